# frozen_string_literal: true

require "etc"

module MultiTenant
  # Discovery settings. An OOD site sets them in /etc/ood/config/apps/dashboard/env.
  #
  # MULTITENANT_HOST_DOMAINS="cluster.example.edu,ib.example.edu" are the cluster's domains: a share's
  # `host` must be one of its job's nodes, as Slurm names it or that name, "." and one of these
  # (any case). Not set: the last `search` or `domain` line of /etc/resolv.conf (the resolver's), read once per process.
  class Config
    ENV_NAMES = {
      enabled: "MULTITENANT_ENABLED", key_dir: "MULTITENANT_KEY_DIR", key_owner: "MULTITENANT_KEY_OWNER",
      wckey: "MULTITENANT_WCKEY", strategy: "MULTITENANT_STRATEGY", legacy: "MULTITENANT_LEGACY",
      timeout: "MULTITENANT_TIMEOUT", clusters: "MULTITENANT_CLUSTERS", cards: "MULTITENANT_CARDS",
      bin_dir: "MULTITENANT_SLURM_BIN", deliveries: "MULTITENANT_DELIVERIES", clusters_dir: "OOD_CLUSTERS",
      ssh_port: "OOD_SSH_PORT", max_cards: "MULTITENANT_MAX_CARDS", max_cards_per_owner: "MULTITENANT_MAX_CARDS_PER_OWNER",
      node_proxy: "MULTITENANT_NODE_PROXY", host_domains: "MULTITENANT_HOST_DOMAINS"
    }.freeze
    DEFAULTS = {
      enabled: true, key_dir: "/etc/multitenant/keys", key_owner: "root", wckey: "multitenant",
      strategy: "squeue", legacy: false, timeout: 5.0, clusters: {}, cards: true, bin_dir: nil,
      deliveries: %w[sys/multitenant-delivery_default sys/multitenant-delivery_debug sys/multitenant-delivery_content],
      clusters_dir: "/etc/ood/config/clusters.d", ssh_port: "22", max_cards: 50, max_cards_per_owner: 10,
      node_proxy: "rnode", host_domains: nil
    }.freeze

    # The on/off switches. LEGACY turns on an insecure decoder, ENABLED and CARDS decide what every
    # dashboard does: only these words count, so a typo or a word like "disabled" never flips one.
    SWITCHES = %i[enabled legacy cards].freeze
    SWITCH_WORDS = { "true" => true, "yes" => true, "on" => true, "1" => true,
                     "false" => false, "no" => false, "off" => false, "0" => false }.freeze
    SWITCH_RULE = "must be true or false (also yes/no, on/off, 1/0)"

    # A cluster domain: a DNS name, labels of 1-63 ASCII letters, digits and '-' separated by '.'.
    DOMAIN = /\A(?=[^\n]{1,253}\z)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\z/
    DOMAIN_RULE = "each domain must be a DNS name: labels of letters, digits and '-' separated by '.' (cluster.example.edu)"

    attr_reader(*DEFAULTS.keys)

    # true or false from a switch's value (a boolean, or one of SWITCH_WORDS in any case, spaces
    # around ignored); anything else raises InputError naming the variable, the value and the words.
    def self.switch(name, value)
      return value if [true, false].include?(value)

      word = value.to_s.strip.downcase if value.is_a?(String) || value.is_a?(Integer)
      SWITCH_WORDS.fetch(word) { raise InputError, "#{ENV_NAMES.fetch(name)}=#{value.inspect}: #{SWITCH_RULE}" }
    end

    # The cluster domains, lowercase, from "a.edu,b.edu" or a list; nil or blank: nil (the resolver's).
    # A value that is not a DNS name raises InputError naming the variable, the setting and the value.
    def self.domains(value)
      return nil if value.nil? || (value.is_a?(String) && value.strip.empty?)

      list = value.is_a?(String) ? value.split(",", -1) : Array(value)
      list = list.map { |d| d.to_s.strip }
      bad = list.empty? ? value : list.find { |d| !d.match?(DOMAIN) }
      raise InputError, "#{ENV_NAMES[:host_domains]}=#{value.inspect}: #{DOMAIN_RULE}, not #{bad.inspect}" unless bad.nil?

      list.map(&:downcase).uniq
    end

    def initialize(**settings)
      unknown = settings.keys - DEFAULTS.keys
      raise InputError, "unknown setting(s): #{unknown.join(", ")}" unless unknown.empty?

      DEFAULTS.merge(settings).each { |k, v| instance_variable_set(:"@#{k}", SWITCHES.include?(k) ? Config.switch(k, v) : v) }
      %i[max_cards max_cards_per_owner].each do |k|
        v = instance_variable_get(:"@#{k}")
        raise InputError, "#{ENV_NAMES[k]} must be a whole number from 0 to 10000, not #{v.inspect}" unless v.is_a?(Integer) && v.between?(0, 10_000)
      end
      unless %w[squeue sacct sacct+squeue].include?(@strategy.to_s)
        raise InputError, "MULTITENANT_STRATEGY must be squeue or sacct, not #{@strategy.inspect}"
      end
      unless View::NODE_PROXIES.include?(@node_proxy.to_s.downcase)
        raise InputError, "MULTITENANT_NODE_PROXY must be one of #{View::NODE_PROXIES.join(", ")}, not #{@node_proxy.inspect}"
      end
      raise InputError, "MULTITENANT_TIMEOUT=#{@timeout.inspect}: must be a number of seconds between 0.1 and 300" unless @timeout.is_a?(Numeric) && @timeout.to_f.finite? && @timeout.to_f.between?(0.1, 300)

      @host_domains = Config.domains(@host_domains)
    end

    # MULTITENANT_CLUSTERS="slurm_name=ood_id,other=ood2" maps Slurm cluster names to OOD cluster ids.
    def self.from_env(env = ENV)
      # An empty setting means the default, but an empty switch is refused like any other non-word.
      raw = ENV_NAMES.to_h { |k, name| [k, env[name]] }.compact.reject { |k, v| v.strip.empty? && !SWITCHES.include?(k) }
      settings = raw.to_h do |k, v|
        setting(k, v)
      rescue ArgumentError, TypeError => e
        raise InputError, "#{ENV_NAMES[k]}=#{v.inspect}: #{e.message}"
      end
      new(**settings)
    end

    def self.setting(k, v)
      case k
      when *SWITCHES then [k, switch(k, v)]
      when :timeout then [k, Float(v)]
      when :max_cards, :max_cards_per_owner then [k, Integer(v.strip, 10)]
      when :clusters then [k, v.split(",").to_h { |pair| pair.split("=", 2).map(&:strip) }]
      when :deliveries then [k, DEFAULTS[:deliveries] + v.split(",").map(&:strip)]
      # As ood_core reads it (Helper.ssh_port, lib/ood_core/job/adapters/helper.rb at v0.31.1).
      when :ssh_port then [k, v.to_i.to_s]
      else [k, v.strip]
      end
    end
    private_class_method :setting

    # What the native discovery takes.
    def native(dataroot:, per_cluster:, now: nil)
      owner = key_owner.to_s.match?(/\A\d+\z/) ? Integer(key_owner) : Etc.getpwnam(key_owner.to_s).uid
      { "targets" => Clusters.targets(self), "ssh_port" => ssh_port.to_s, "key_dir" => key_dir.to_s, "key_owner_uid" => owner, "wckey" => wckey.to_s, "strategy" => strategy.to_s,
        "legacy" => legacy ? true : false, "timeout" => timeout.to_f, "bin_dir" => bin_dir&.to_s,
        "dataroot" => cards && dataroot ? dataroot.to_s : nil, "per_cluster" => per_cluster ? true : false,
        "cluster_map" => clusters.to_h { |k, v| [k.to_s, v.to_s] }, "deliveries" => deliveries.map(&:to_s), "now" => now,
        "max_cards" => max_cards, "max_cards_per_owner" => max_cards_per_owner, "host_domains" => host_domains }
    rescue ArgumentError => e
      raise InputError, "MULTITENANT_KEY_OWNER #{key_owner.inspect}: #{e.message}"
    end
  end
end
