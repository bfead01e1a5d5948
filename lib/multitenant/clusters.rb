# frozen_string_literal: true

require "yaml"

module MultiTenant
  # OOD's clusters.d, read as ood_core reads it (OodCore::Clusters.load_file, lib/ood_core/clusters.rb at
  # ood_core v0.31.1): every *.yml and *.yaml file, YAML.safe_load, its "v2" key; the id is the file name.
  module Clusters
    # The entry OOD knows as `id`: its "v2" hash. Raises InputError with the fix when there is none.
    def self.entry(dir, id)
      path = %w[yml yaml].map { |ext| File.join(dir, "#{id}.#{ext}") }.find { |p| File.file?(p) }
      raise InputError, "no #{File.join(dir, "#{id}.yml")}" unless path

      doc = YAML.safe_load(File.read(path))
      v2 = doc.is_a?(Hash) ? doc["v2"] : nil
      raise InputError, "#{path} has no v2 section" unless v2.is_a?(Hash)

      v2
    rescue Psych::Exception, SystemCallError => e
      raise InputError, "#{path || dir}: #{e.message.gsub(/\s+/, " ")}"
    end

    # How OOD's Slurm adapter reaches the cluster of a clusters.d entry's `job` section.
    def self.reach(job)
      overrides = job["bin_overrides"] || {}
      raise InputError, "its job.bin_overrides is not a mapping of command to path" unless overrides.is_a?(Hash)

      { "bin" => job["bin"]&.to_s, "conf" => job["conf"]&.to_s, "cluster" => job["cluster"]&.to_s,
        "bin_overrides" => overrides.to_h { |k, v| [k.to_s, v.to_s] },
        "submit_host" => job["submit_host"].to_s.empty? ? nil : job["submit_host"].to_s,
        "strict_host_checking" => job.fetch("strict_host_checking", true) ? true : false }
    end

    # What native discovery searches: one target per MULTITENANT_CLUSTERS entry, reached as OOD reaches
    # the entry it maps to (job.bin, bin_overrides, conf, cluster → -M, submit_host), or one target of
    # plain commands when nothing is mapped. An entry that cannot be used is a target with a problem (one
    # line with the fix): its cluster's shares are then unknown, so no card is written or taken away.
    def self.targets(config)
      return [{ "name" => nil }] if config.clusters.empty?

      config.clusters.map do |slurm, id|
        target = { "name" => slurm.to_s }
        begin
          job = entry(config.clusters_dir, id)["job"] || {}
          raise InputError, "its job section is not a mapping" unless job.is_a?(Hash)
          raise InputError, "its job.adapter is #{job["adapter"].inspect}, not slurm" unless job["adapter"] == "slurm"
          if job["cluster"] && job["cluster"].to_s != slurm.to_s
            raise InputError, "its job.cluster is #{job["cluster"]}, not #{slurm}"
          end

          target.merge!(reach(job))
        rescue StandardError => e
          why = e.is_a?(InputError) ? e.message : "its entry could not be read (#{e.class}: #{e.message})"
          target["problem"] = "MULTITENANT_CLUSTERS maps Slurm cluster #{slurm} to OOD cluster #{id}, but #{why.gsub(/\s+/, " ")}: " \
                              "its shares are left as they were; fix the mapping or run rake -f …/admin.rake install APPLY=1"
        end
        target
      end
    end
  end
end
