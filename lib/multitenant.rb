# frozen_string_literal: true

require_relative "multitenant/version"
require_relative "multitenant/error"

# Share services running as Slurm jobs with chosen users of Open OnDemand.
# Always defined, even when the native library cannot load: OOD forms that read MultiTenant.specs
# must keep working (they then see no shares).
module MultiTenant
  class << self
    # Why the native library did not load, or nil.
    attr_reader :load_error

    # Shares discovered for the current user, keyed by job id.
    def specs
      @specs ||= {}
    end

    def native?
      load_error.nil?
    end

    def native!
      raise NativeError, "multitenant's native library is not loaded: #{load_error.message}" unless native?
    end

    # The job-side publisher binary installed with the gem.
    def publisher_path
      File.expand_path("../libexec/mtshare", __dir__)
    end
  end

  begin
    require_relative "multitenant/multitenant"
  rescue LoadError => e
    @load_error = e
    warn "multitenant: native library not loaded (#{e.message}); MultiTenant.specs stays empty"
  end
end

require "logger"
require_relative "multitenant/config"
require_relative "multitenant/clusters"
require_relative "multitenant/envelope"
require_relative "multitenant/key_dir"
require_relative "multitenant/discovery"
require_relative "multitenant/view"
require_relative "multitenant/apps"
require_relative "multitenant/refresh"
