# frozen_string_literal: true

module MultiTenant
  # Seal and open job names. The work is done natively; this adds keyword arguments.
  #
  # A name is bound to one run of one job: its id, its owner, the Slurm cluster it runs on
  # (SLURM_CLUSTER_NAME in the job, squeue's Cluster field) and its restart count (SLURM_RESTART_COUNT
  # in the job, absent meaning 0; squeue -O RestartCnt). Pass what Slurm reports, never what a name says.
  module Envelope
    class << self
      # message: {"session_id", "app", "method" ("card"/"form"), "delivery", "connection" => {..},
      #           "allow" => [users] (optional), "expires_at" => epoch seconds (optional)}
      # Writes version 2, which opens only for the same job id, owner, cluster and restart count.
      def seal(message, key:, group:, job_id:, owner:, cluster:, restarts: 0, prefix: DEFAULT_PREFIX)
        MultiTenant.native!
        _seal(stringify(message), key, prefix, group, job_id.to_s, owner, cluster.to_s, restart_count(restarts))
      end

      # Returns {"prefix", "group", "version", "key_id", "size", "message" => {...}}.
      # cluster: is needed for version 2 names (InputError without it); version 1 and legacy names
      # ignore cluster: and restarts: (they cannot tell runs or clusters apart).
      # legacy: true also reads the first implementation's insecure format.
      def open(name, keys:, job_id:, owner:, cluster: nil, restarts: 0, legacy: false)
        MultiTenant.native!
        return _open_legacy(name, job_id.to_s, owner) if legacy && parse(name)["version"] == "legacy"

        _open(name, Array(keys), job_id.to_s, owner, cluster.to_s, restart_count(restarts))
      end

      # The name's fields and size, without any key. "version" is "1", "2" or "legacy".
      def parse(name)
        MultiTenant.native!
        _parse(name)
      end

      private

      # Slurm's restart count as an Integer: nil is 0 (as an absent SLURM_RESTART_COUNT); squeue's text works too.
      def restart_count(restarts)
        return 0 if restarts.nil?

        n = case restarts
            when Integer then restarts
            when String then Integer(restarts.strip, 10, exception: false)
            end
        raise InputError, "restarts #{restarts.inspect} must be Slurm's restart count, an integer from 0" unless n&.between?(0, 0xFFFF_FFFF)

        n
      end

      def stringify(value)
        case value
        when Hash then value.to_h { |k, v| [k.to_s, stringify(v)] }
        when Array then value.map { |v| stringify(v) }
        when Symbol then value.to_s
        else value
        end
      end
    end
  end
end
