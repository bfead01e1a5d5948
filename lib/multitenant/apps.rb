# frozen_string_literal: true

require "shellwords"
require "uri"

module MultiTenant
  # Helpers for the service and client app templates shipped in ood/apps. The form's choices are
  # validated here and shell-quoted, so no template repeats or weakens them.
  module Apps
    DELIVERIES = %w[sys/multitenant-delivery_default sys/multitenant-delivery_debug sys/multitenant-delivery_content].freeze

    module_function

    # The publisher on the compute nodes (MULTITENANT_PUBLISHER in the dashboard's env, else on PATH).
    def publisher = ENV.fetch("MULTITENANT_PUBLISHER", "mtshare")

    def wckey = ENV.fetch("MULTITENANT_WCKEY", "multitenant")

    def value(context, name)
      context.respond_to?(name) ? context.public_send(name).to_s.strip : ""
    end

    # `mtshare publish --group … --app … --method … --delivery … [--expires-in …]`, quoted; append
    # `--set key="$var"` pairs in the template.
    def publish(context, app:, delivery: nil)
      method = value(context, :mt_method)
      delivery ||= value(context, :mt_delivery)
      hours = Float(value(context, :mt_expires_hours), exception: false)
      flags = ["--group", value(context, :auto_groups), "--app", app,
               "--method", %w[card form].include?(method) ? method : "card",
               "--delivery", DELIVERIES.include?(delivery) ? delivery : DELIVERIES.first]
      flags += ["--expires-in", "#{(hours * 3600).round}s"] if hours&.positive? && hours <= 24 * 366
      "#{Shellwords.escape(publisher)} publish #{Shellwords.join(flags)}"
    end

    # An http(s) URL, or "" — for values a client app puts in its job's environment.
    def http_url(url)
      uri = URI.parse(url.to_s.strip)
      uri.is_a?(URI::HTTP) && uri.host ? uri.to_s : ""
    rescue URI::InvalidURIError
      ""
    end
  end
end
