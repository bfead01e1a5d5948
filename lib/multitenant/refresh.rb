# frozen_string_literal: true

module MultiTenant
  # Live refresh: discovery runs again when the user opens the dashboard, the sessions page or an app's
  # form, at most once per MULTITENANT_TTL seconds (default 60), so shares, cards and the forms' lists of
  # shares change without a restart.
  module Refresh
    # The pages that show shares: the dashboard, the sessions page and the app forms (which list them).
    CONTROLLERS = %w[DashboardController BatchConnect::SessionsController BatchConnect::SessionContextsController].freeze
    MUTEX = Mutex.new

    module_function

    # Adds a before_action to each controller this OOD version has; returns the names hooked.
    # A version without them is simply left as it is.
    def install(controllers: CONTROLLERS)
      controllers.filter_map do |name|
        klass = begin
          Object.const_get(name)
        rescue NameError
          nil
        end
        next unless klass.respond_to?(:before_action)

        # Ahead of the controller's own callbacks, which load the app (and its form) they render.
        hook = klass.respond_to?(:prepend_before_action) ? :prepend_before_action : :before_action
        klass.public_send(hook) { MultiTenant::Refresh.maybe_run }
        name
      end
    rescue StandardError => e
      MultiTenant.log("live refresh not installed: #{e.message}")
      []
    end

    # Remembers how the boot-time discovery ran, and when.
    def configure(now: clock, **discover_args)
      @args = discover_args
      @last = now
    end

    # Seconds between refreshes, kept between 5 s and an hour.
    def ttl
      Float(ENV.fetch("MULTITENANT_TTL", "60")).clamp(5.0, 3600.0)
    rescue ArgumentError, FloatDomainError
      60.0
    end

    # First takes away delivered cards OOD has marked completed (their job ended, or the user pressed
    # Cancel: no scheduler call, so OOD never keeps showing them "Completed"); then runs discovery if
    # the last run is older than the TTL. A request never waits for another request's refresh, and
    # nothing raises.
    def maybe_run(now: clock)
      # Nothing to refresh until the boot-time discovery ran (never, when multitenant is disabled).
      return false unless @args

      settle
      return false if @last && now - @last < ttl
      return false unless MUTEX.try_lock

      begin
        return false if @last && now - @last < ttl

        @last = now
        before = MultiTenant.specs
        MultiTenant.discover(**(@args || {}))
        forget_forms unless MultiTenant.specs == before
        true
      ensure
        MUTEX.unlock
      end
    rescue Exception => e # rubocop:disable Lint/RescueException -- runs inside a dashboard request
      raise if e.is_a?(SignalException) || e.is_a?(SystemExit)

      MultiTenant.log("refresh failed: #{e.message}")
      false
    end

    def settle
      dataroot = @args[:dataroot]
      return unless dataroot && MultiTenant.native? && Discovery.respond_to?(:_settle_completed)

      Discovery._settle_completed(dataroot.to_s, Process.uid)
    end

    # OOD >= 4.2 keeps each batch connect app, with its form as rendered then, in Rails.cache for six
    # hours (BatchConnect::App.from_token, apps/dashboard/app/models/batch_connect/app.rb at v4.2.3):
    # forms that list shares (MultiTenant.specs) must be rendered again once the shares changed.
    def forget_forms
      return unless defined?(Rails) && Rails.respond_to?(:cache) && Rails.cache.respond_to?(:delete_matched)

      Rails.cache.delete_matched(%r{\Abatch_connect_app/})
    rescue NotImplementedError
      nil
    end

    def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
