# frozen_string_literal: true

module MultiTenant
  # Seal and open job names. The work is done natively; this adds keyword arguments.
  module Envelope
    class << self
      # message: {"session_id", "app", "method" ("card"/"form"), "delivery", "connection" => {..},
      #           "allow" => [users] (optional), "expires_at" => epoch seconds (optional)}
      def seal(message, key:, group:, job_id:, owner:, prefix: DEFAULT_PREFIX)
        MultiTenant.native!
        _seal(stringify(message), key, prefix, group, job_id.to_s, owner)
      end

      # Returns {"prefix", "group", "version", "key_id", "size", "message" => {...}}.
      # legacy: true also reads the first implementation's insecure format.
      def open(name, keys:, job_id:, owner:, legacy: false)
        MultiTenant.native!
        return _open_legacy(name, job_id.to_s, owner) if legacy && parse(name)["version"] == "legacy"

        _open(name, Array(keys), job_id.to_s, owner)
      end

      # The name's fields and size, without any key.
      def parse(name)
        MultiTenant.native!
        _parse(name)
      end

      private

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
