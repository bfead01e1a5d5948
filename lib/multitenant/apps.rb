# frozen_string_literal: true

require "etc"
require "shellwords"
require "uri"

module MultiTenant
  # Helpers for the service and client app templates shipped in ood/apps. The form's choices are
  # validated here and shell-quoted, so no template repeats or weakens them.
  module Apps
    DELIVERIES = %w[sys/multitenant-delivery_default sys/multitenant-delivery_debug sys/multitenant-delivery_content].freeze
    NO_GROUP = ["No group of yours has a multitenant key: ask your admin", ""].freeze

    module_function

    # The publisher on the compute nodes (MULTITENANT_PUBLISHER in the dashboard's env, else on PATH).
    def publisher = ENV.fetch("MULTITENANT_PUBLISHER", "mtshare")

    def wckey = ENV.fetch("MULTITENANT_WCKEY", "multitenant")

    # The ollama command on the compute nodes (MULTITENANT_OLLAMA in the dashboard's env, else on PATH).
    def ollama = ENV.fetch("MULTITENANT_OLLAMA", "ollama")

    def key_dir = ENV["MULTITENANT_KEY_DIR"].to_s.strip.then { |d| d.empty? ? Config::DEFAULTS[:key_dir] : d }

    # The share group's choices: the user's groups that have a key, as [label, value]. Not OOD's
    # auto_groups, which would also be submitted as the Slurm account.
    def group_options
      names = (Process.groups + [Process.egid]).uniq.filter_map do |gid|
        Etc.getgrgid(gid).name
      rescue ArgumentError
        nil
      end
      # Only names mtshare accepts: a group name also names its key file.
      names = names.uniq.select { |n| n.match?(/\A\w[\w.-]{0,63}\z/) && File.file?(File.join(key_dir, "#{n}.key")) }.sort
      names.empty? ? [NO_GROUP] : names.map { |n| [n, n] }
    end

    # The OOD cluster id the service apps submit to: MULTITENANT_SUBMIT_CLUSTER (install writes it),
    # else the first visible Slurm cluster the user may submit to, else OOD's conventional "cluster".
    def submit_cluster
      id = ENV["MULTITENANT_SUBMIT_CLUSTER"].to_s.strip
      return id unless id.empty?

      if defined?(OodAppkit) && OodAppkit.respond_to?(:clusters)
        found = OodAppkit.clusters.find do |c|
          c.job_config[:adapter].to_s == "slurm" && c.job_allow? && !c.metadata.hidden && !c.id.to_s.end_with?("-multitenant")
        end
        return found.id.to_s if found
      end
      "cluster"
    rescue StandardError
      "cluster"
    end

    def value(context, name)
      context.respond_to?(name) ? context.public_send(name).to_s.strip : ""
    end

    # `mtshare publish --group … --app … --method … --delivery … [--expires-in …]`, quoted; append
    # `--set key="$var"` pairs in the template.
    def publish(context, app:, delivery: nil)
      method = value(context, :mt_method)
      delivery ||= value(context, :mt_delivery)
      hours = Float(value(context, :mt_expires_hours), exception: false)
      flags = ["--group", value(context, :mt_group), "--app", app,
               "--method", %w[card form].include?(method) ? method : "card",
               "--delivery", DELIVERIES.include?(delivery) ? delivery : DELIVERIES.first]
      flags += ["--expires-in", "#{(hours * 3600).round}s"] if hours&.positive? && hours <= 24 * 366
      # OOD submits with --export=NONE (ood_core's Slurm adapter): the job never sees the dashboard's
      # settings, so a key dir the site chose is passed on.
      flags += ["--key-dir", key_dir] unless ENV["MULTITENANT_KEY_DIR"].to_s.strip.empty?
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
