# frozen_string_literal: true

# multitenant's Open OnDemand initializer. Install as
#   /etc/ood/config/apps/dashboard/initializers/multitenant.rb
# and set, in /etc/ood/config/apps/dashboard/env:
#   MULTITENANT_LIB=/path/to/multitenant/lib      (the installed gem's lib directory)
#   MULTITENANT_ENABLED=1  MULTITENANT_KEY_DIR=/etc/multitenant/keys  MULTITENANT_WCKEY=multitenant
#   MULTITENANT_STRATEGY=squeue  MULTITENANT_CLUSTERS=slurm_name=ood_cluster_id
# It runs discovery once per dashboard start and can never stop the dashboard from booting.

module MultiTenant
  # Forms that read MultiTenant.specs keep working even if nothing below loads.
  def self.specs
    @specs ||= {}
  end
end

# A warning is one line of the dashboard's log, whatever the message holds.
one_line = ->(e) { e.message.gsub(/[[:cntrl:]]+/, " ") }

begin
  lib = ENV.fetch("MULTITENANT_LIB", "/opt/multitenant/lib")
  $LOAD_PATH.unshift(lib) unless $LOAD_PATH.include?(lib)
  require "multitenant"

  # A proc, not a lambda: Rails calls after_initialize hooks with the application as an argument.
  run = proc do
    config = MultiTenant::Config.from_env
    next unless config.enabled

    dataroot = defined?(Configuration) && Configuration.respond_to?(:dataroot) ? Configuration.dataroot : nil
    dataroot ||= OodAppkit.dataroot if defined?(OodAppkit) && OodAppkit.respond_to?(:dataroot)
    per_cluster = defined?(Configuration) && Configuration.respond_to?(:per_cluster_dataroot?) &&
                  Configuration.per_cluster_dataroot?
    # OOD makes a user's data root on their first request, after this hook: make it now, with OOD's own
    # call (BatchConnect::Session.db_root, app/models/batch_connect/session.rb at v3.1.16 and v4.2.3), so
    # the very first dashboard start already shows the user's shares.
    begin
      BatchConnect::Session.db_root if dataroot && defined?(BatchConnect::Session) && BatchConnect::Session.respond_to?(:db_root)
    rescue StandardError => e
      warn "multitenant: could not create the data root #{dataroot}: #{one_line.call(e)}"
    end
    MultiTenant.discover(dataroot: dataroot, per_cluster: per_cluster, config: config)
    MultiTenant::Refresh.configure(dataroot: dataroot, per_cluster: per_cluster, config: config)
  rescue Exception => e # rubocop:disable Lint/RescueException -- nothing may stop the dashboard's boot
    raise if e.is_a?(SignalException) || e.is_a?(SystemExit)

    warn "multitenant: discovery skipped: #{e.class}: #{one_line.call(e)}"
  end

  if defined?(Rails) && Rails.respond_to?(:application) && Rails.application
    Rails.application.config.after_initialize(&run)
    Rails.application.config.after_initialize { MultiTenant::Refresh.install if defined?(MultiTenant::Refresh) }
  else
    run.call
  end
rescue StandardError, ScriptError => e
  warn "multitenant: not loaded (#{e.class}: #{one_line.call(e)}); shares will not be discovered"
end
