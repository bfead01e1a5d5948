# frozen_string_literal: true

module MultiTenant
  # Live refresh: discovery runs again when the user opens the dashboard or the sessions page, at most
  # once per MULTITENANT_TTL seconds (default 60), so shares and cards change without a restart.
  module Refresh
    CONTROLLERS = %w[DashboardController BatchConnect::SessionsController].freeze
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

        klass.before_action { MultiTenant::Refresh.maybe_run }
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

    # Runs discovery if the last run is older than the TTL, or at once when OOD has marked one of the
    # user's delivered cards completed (its job ended, or the user pressed Cancel): OOD would otherwise
    # show that card as "Completed" until the TTL ran out. A request never waits for another request's
    # refresh, and nothing raises.
    def maybe_run(now: clock)
      # Nothing to refresh until the boot-time discovery ran (never, when multitenant is disabled).
      return false unless @args
      return false unless due?(now)
      return false unless MUTEX.try_lock

      begin
        return false unless due?(now)

        @last = now
        MultiTenant.discover(**(@args || {}))
        true
      ensure
        MUTEX.unlock
      end
    rescue Exception => e # rubocop:disable Lint/RescueException -- runs inside a dashboard request
      raise if e.is_a?(SignalException) || e.is_a?(SystemExit)

      MultiTenant.log("refresh failed: #{e.message}")
      false
    end

    def due?(now)
      return true unless @last && now - @last < ttl

      dataroot = @args[:dataroot]
      dataroot && MultiTenant.native? ? Discovery._marked_completed(dataroot.to_s, Process.uid) : false
    end

    def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
