# frozen_string_literal: true

require "etc"
require "fileutils"
require "json"
require "yaml"

module MultiTenant
  # The admin tasks behind admin.rake. Each returns the lines to print; a problem is one line that
  # says what is wrong and how to fix it.
  class Admin
    GEM_ROOT = File.expand_path("../..", __dir__)
    BLOCK_BEGIN = "# BEGIN multitenant (managed by `rake -f .../admin.rake install`)"
    BLOCK_END = "# END multitenant"
    DISMISS_SUFFIX = "-multitenant"

    attr_reader :ood_etc, :apps_dir

    def initialize(ood_etc: ENV.fetch("OOD_ETC", "/etc/ood"), apps_dir: ENV.fetch("OOD_APPS", "/var/www/ood/apps/sys"), env: ENV)
      @ood_etc = ood_etc
      @apps_dir = apps_dir
      @env = env
    end

    def env_file = File.join(ood_etc, "config/apps/dashboard/env")
    def initializer_path = File.join(ood_etc, "config/apps/dashboard/initializers/multitenant.rb")
    def clusters_dir = File.join(ood_etc, "config/clusters.d")
    def dismiss_scancel = File.join(GEM_ROOT, "ood/bin/mt-dismiss-scancel")

    # Settings as the dashboard sees them: its env file, then this process's environment.
    def config
      @config ||= Config.from_env(dashboard_env.merge(@env.to_h.select { |k, _| k.start_with?("MULTITENANT_") }))
    end

    def dashboard_env
      return {} unless File.file?(env_file)

      File.readlines(env_file, chomp: true).filter_map do |line|
        next if line.strip.start_with?("#") || !line.include?("=")

        k, v = line.delete_prefix("export ").split("=", 2)
        v = v.strip
        [k.strip, v.match?(/\A(["']).*\1\z/) ? v[1...-1] : v]
      end.to_h
    end

    def command(program, *args) = Discovery._command(program, args, config.timeout, config.bin_dir)

    def key_dir = KeyDir.new(config.key_dir, owner: config.key_owner)

    def keygen(group: nil, site: false, rotate: false)
      path = key_dir.generate(group: group, site: site, rotate: rotate)
      note = site ? " — readable by every user: it only hides shares from casual view" : ""
      ["wrote #{path}#{note}"]
    end

    # [problems, fine]: each problem says how to fix it.
    def doctor
      problems = []
      fine = []
      check = ->(ok, good, bad) { ok ? fine << good : problems << bad }
      begin
        conf = command("scontrol", "show", "config")
        get = ->(k) { conf[/^#{k}\s*=\s*(.*)$/, 1].to_s.strip }
        check.call(get.call("TrackWCKey").casecmp?("yes"), "Slurm tracks WCKeys",
                   "Slurm: TrackWCKey is off: set TrackWCKey=yes in slurm.conf and slurmdbd.conf")
        check.call(get.call("AccountingStorageEnforce").include?("wckeys"), "Slurm enforces WCKeys",
                   "Slurm: WCKeys are not enforced, anyone may publish: add wckeys to AccountingStorageEnforce")
        check.call(!get.call("PrivateData").include?("jobs"), "jobs are visible to all users",
                   "Slurm: PrivateData=jobs hides other users' jobs, so nothing can be shared: remove jobs from PrivateData")
        users = command("sacctmgr", "-n", "-P", "show", "wckey", "where", "name=#{config.wckey}", "format=user").split.uniq
        check.call(!users.empty?, "users who may publish (--wckey=#{config.wckey}): #{users.join(", ")}",
                   "Slurm: nobody may submit with --wckey=#{config.wckey}: sacctmgr add user NAME wckey=#{config.wckey}")
      rescue Error => e
        problems << "Slurm: #{e.message}"
      end
      doctor_keys(problems, fine)
      doctor_ood(problems, fine)
      [problems, fine]
    end

    def doctor_keys(problems, fine)
      dir = config.key_dir.to_s
      unless File.directory?(dir)
        return problems << "keys: #{dir} does not exist: rake -f …/admin.rake keygen GROUP=<group>"
      end

      groups = Dir.children(dir).grep(/\A[^.@][^\/]*\.key\z/).map { |f| f.delete_suffix(".key") }
      problems << "keys: no group key in #{dir}: rake -f …/admin.rake keygen GROUP=<group>" if groups.empty?
      groups.each do |g|
        keys = key_dir.opening_keys(g)
        fine << "keys: group #{g}: #{keys.size} key(s), root:#{g} 0440"
      rescue Error => e
        problems << "keys: #{e.message}"
      end
      return unless File.exist?(File.join(dir, "@site.key"))

      key_dir.opening_keys("root")
      fine << "keys: a site-wide key exists: every user can read it, so shares sealed with it are only obfuscated"
    rescue Error => e
      problems << "keys: #{e.message}"
    end

    def doctor_ood(problems, fine)
      if File.file?(initializer_path)
        fine << "OOD: initializer installed"
      else
        problems << "OOD: no initializer at #{initializer_path}: rake -f …/admin.rake install APPLY=1"
      end
      lib = dashboard_env["MULTITENANT_LIB"]
      if lib && File.file?(File.join(lib, "multitenant.rb"))
        fine << "OOD: MULTITENANT_LIB=#{lib}"
      else
        problems << "OOD: #{env_file} has no MULTITENANT_LIB naming the gem's lib directory: rake -f …/admin.rake install APPLY=1"
      end
      missing = app_dirs.map { |d| File.basename(d) }.reject { |a| File.directory?(File.join(apps_dir, a)) }
      if missing.empty?
        fine << "OOD: apps installed in #{apps_dir}"
      else
        problems << "OOD: apps missing from #{apps_dir}: #{missing.join(", ")}: rake -f …/admin.rake install APPLY=1"
      end
      config.clusters.each_value do |id|
        path = File.join(clusters_dir, "#{id}.yml")
        unless File.file?(path)
          problems << "OOD: MULTITENANT_CLUSTERS names #{id}, but #{path} does not exist: fix the mapping or run install"
          next
        end
        v2 = begin
          YAML.safe_load(File.read(path))&.fetch("v2", {}) || {}
        rescue Psych::Exception => e
          problems << "OOD: #{path} is not valid YAML: #{e.message}"
          next
        end
        scancel = v2.dig("job", "bin_overrides", "scancel").to_s
        ok = v2.dig("metadata", "hidden") == true && scancel.end_with?("mt-dismiss-scancel") && File.executable?(scancel)
        if ok
          fine << "OOD: cards use #{id}, whose Delete only dismisses"
        else
          problems << "OOD: cards use cluster #{id}, where Delete would run scancel on the shared job: point MULTITENANT_CLUSTERS at the hidden #{DISMISS_SUFFIX} entry (install writes it)"
        end
      end
      problems << "OOD: MULTITENANT_CLUSTERS is not set: cards get Slurm's cluster name and Delete may cancel shared jobs: rake -f …/admin.rake install APPLY=1" if config.clusters.empty?
    end

    def app_dirs = Dir[File.join(GEM_ROOT, "ood/apps/*")].select { |d| File.directory?(d) }.sort

    # One row per running job with the WCKey; decoded where this host can read the key.
    def list
      rows = Discovery._jobs(config.strategy, config.wckey, config.timeout, config.bin_dir).map do |job|
        next [job["id"], job["owner"], "-", "-", "-", job["name"].size.to_s, "not shared yet"] unless job["name"].include?("|")

        info = Envelope.parse(job["name"])
        share = open_share(job)
        [job["id"], job["owner"], info["group"], share ? share.dig("message", "app") : "-", info["version"], info["size"].to_s,
         share ? "yes" : "no"]
      rescue Error => e
        [job["id"], job["owner"], "-", "-", "-", job["name"].size.to_s, e.message]
      end
      header = %w[JOB OWNER GROUP APP FORMAT SIZE OPENS-HERE]
      widths = ([header] + rows).transpose.map { |col| col.map(&:size).max }
      ([header] + rows).map { |r| r.each_with_index.map { |c, i| i == r.size - 1 ? c : c.ljust(widths[i]) }.join("  ") }
    end

    def open_share(job)
      info = Envelope.parse(job["name"])
      keys = info["version"] == "legacy" ? [] : key_dir.opening_keys(info["group"])
      Envelope.open(job["name"], keys: keys, job_id: job["id"], owner: job["owner"], legacy: config.legacy)
    rescue Error
      nil
    end

    def decode(job_id: nil, name: nil, owner: nil)
      if job_id && !name
        job = Discovery._jobs(config.strategy, config.wckey, config.timeout, config.bin_dir).find { |j| j["id"] == job_id.to_s }
        raise InputError, "no running job #{job_id} with --wckey=#{config.wckey}" unless job

        name = job["name"]
        owner ||= job["owner"]
      end
      raise InputError, "give JOB=<id>, or NAME=<job name> with JOB_ID= and OWNER=" unless name && job_id && owner

      info = Envelope.parse(name)
      keys = info["version"] == "legacy" ? [] : key_dir.opening_keys(info["group"])
      share = Envelope.open(name, keys: keys, job_id: job_id, owner: owner, legacy: config.legacy)
      m = share["message"]
      ["job #{job_id} of #{owner}: group #{share["group"]}, format #{share["version"]}, key #{share["key_id"] || "-"}, #{share["size"]} of 1024 characters",
       "app #{m["app"]}, #{m["method"]}, delivered by #{m["delivery"]}, session #{m["session_id"]}",
       "allow #{m["allow"] ? m["allow"].join(",") : "(whole group)"}, expires #{m["expires_at"] ? Time.at(m["expires_at"]).utc : "never"}",
       *m["connection"].map { |k, v| "  #{k} = #{v.inspect}" }]
    end

    # Every file install would write: [[path, content, mode]].
    def install_plan
      plan = app_dirs.flat_map do |dir|
        Dir.glob("**/*", base: dir).select { |f| File.file?(File.join(dir, f)) }.map do |f|
          [File.join(apps_dir, File.basename(dir), f), File.read(File.join(dir, f)), 0o644]
        end
      end
      plan << [initializer_path, File.read(File.join(GEM_ROOT, "ood/initializers/multitenant.rb")), 0o644]
      mapping = {}
      Dir[File.join(clusters_dir, "*.yml")].sort.each do |path|
        id = File.basename(path, ".yml")
        next if id.end_with?(DISMISS_SUFFIX)

        doc = begin
          YAML.safe_load(File.read(path)) || {}
        rescue Psych::Exception => e
          raise InputError, "#{path}: not valid YAML (#{e.message}): fix it before install"
        end
        v2 = doc["v2"] || {}
        next unless v2.dig("job", "adapter") == "slurm" && v2.dig("metadata", "hidden") != true

        dismiss = Marshal.load(Marshal.dump(doc))
        dismiss["v2"]["metadata"] = (v2["metadata"] || {}).merge("hidden" => true, "title" => "#{v2.dig("metadata", "title") || id} (shared cards)")
        dismiss["v2"]["job"]["bin_overrides"] = (v2.dig("job", "bin_overrides") || {}).merge("scancel" => dismiss_scancel)
        plan << [File.join(clusters_dir, "#{id}#{DISMISS_SUFFIX}.yml"), YAML.dump(dismiss), 0o644]
        slurm_name = v2.dig("job", "cluster") || command("scontrol", "show", "config")[/^ClusterName\s*=\s*(\S+)/, 1]
        mapping[slurm_name] = "#{id}#{DISMISS_SUFFIX}" if slurm_name
      end
      block = [BLOCK_BEGIN, "MULTITENANT_LIB=#{File.join(GEM_ROOT, "lib")}"]
      block << "MULTITENANT_CLUSTERS=#{mapping.map { |k, v| "#{k}=#{v}" }.join(",")}" unless mapping.empty?
      block << BLOCK_END
      current = File.file?(env_file) ? File.read(env_file, encoding: "UTF-8").scrub : ""
      stripped = current.sub(/^#{Regexp.escape(BLOCK_BEGIN)}\n.*?^#{Regexp.escape(BLOCK_END)}\n?/m, "")
      plan << [env_file, "#{stripped}#{"\n" unless stripped.empty? || stripped.end_with?("\n")}#{block.join("\n")}\n", 0o644]
      plan
    end

    # Dry run unless apply: lists what would change; writes nothing that is already as it should be.
    def install(apply: false)
      changes = install_plan.reject { |path, content, _| File.file?(path) && File.binread(path) == content.b }
      return ["everything is installed and up to date"] if changes.empty?

      changes.map do |path, content, mode|
        verb = File.exist?(path) ? "update" : "create"
        if apply
          FileUtils.mkdir_p(File.dirname(path))
          tmp = "#{path}.#{Process.pid}.tmp"
          File.write(tmp, content)
          File.chmod(mode, tmp)
          File.rename(tmp, path)
        end
        "#{apply ? verb.sub(/e\z/, "") + "ed" : "would #{verb}"} #{path}"
      end + (apply ? [] : ["dry run: nothing was changed; run again with APPLY=1"])
    end

    # Removes every card the gem wrote for the user (their own sessions stay). Root first becomes
    # the user: everything below the data root is the user's to change, so root must not act there.
    def purge(user:, dataroot: nil)
      pw = Etc.getpwnam(user)
      dataroot ||= File.join(pw.dir, ENV.fetch("OOD_DATAROOT", "ondemand/data/sys/dashboard"))
      r = as_user(pw) { Discovery._purge(dataroot, pw.uid, user) }
      lines = ["removed #{r["removed"].size} card(s) of #{user} from #{dataroot}"]
      return lines if r["errors"].empty?

      raise Error, (lines + r["errors"].map { |e| "problem: #{e}" }).join("\n")
    rescue ArgumentError => e
      raise InputError, "purge: #{e.message}"
    end

    # Runs the block in a child process with the user's uid, gid and groups; returns its JSON result.
    def as_user(pw)
      return yield unless Process.uid.zero?

      reader, writer = IO.pipe
      pid = fork do
        reader.close
        Process.initgroups(pw.name, pw.gid)
        Process::GID.change_privilege(pw.gid)
        Process::UID.change_privilege(pw.uid)
        writer.write(JSON.generate(yield))
        exit!(0)
      rescue Exception => e # rubocop:disable Lint/RescueException -- report it to the parent
        writer.write(JSON.generate("removed" => [], "errors" => ["#{e.class}: #{e.message}"]))
        exit!(1)
      end
      writer.close
      out = reader.read
      Process.wait(pid)
      JSON.parse(out)
    end
  end
end
