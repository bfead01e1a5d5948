# frozen_string_literal: true

require "etc"
require "fileutils"
require "json"
require "open3"
require "yaml"

module MultiTenant
  # The admin tasks behind admin.rake. Each returns the lines to print; a problem is one line that
  # says what is wrong and how to fix it.
  class Admin
    GEM_ROOT = File.expand_path("../..", __dir__)
    BLOCK_BEGIN = "# BEGIN multitenant (managed by `rake -f .../admin.rake install`)"
    BLOCK_END = "# END multitenant"
    DISMISS_SUFFIX = "-multitenant"
    MANAGED = %w[MULTITENANT_LIB MULTITENANT_PUBLISHER MULTITENANT_CLUSTERS MULTITENANT_SUBMIT_CLUSTER MULTITENANT_KEY_DIR].freeze
    # Written into the block only when the admin gives it (install's environment, or the block already has it).
    OPTIONAL = %w[MULTITENANT_KEY_DIR].freeze

    # Who runs the code doctor_code checks, for its lines.
    CODE_USES = { dashboard: "every dashboard loads", delete: "every card's Delete runs", job: "every share's job runs" }.freeze

    attr_reader :ood_etc, :apps_dir

    # code_paths: { path => one of CODE_USES' keys } to check instead of this gem's (tests);
    # getfacl: the command doctor reads key files' ACLs with.
    def initialize(ood_etc: ENV.fetch("OOD_ETC", "/etc/ood"), apps_dir: ENV.fetch("OOD_APPS", "/var/www/ood/apps/sys"), env: ENV,
                   code_paths: nil, getfacl: "getfacl")
      @ood_etc = ood_etc
      @apps_dir = apps_dir
      @env = env
      @code_paths = code_paths
      @getfacl = getfacl
    end

    def env_file = File.join(ood_etc, "config/apps/dashboard/env")
    def initializer_path = File.join(ood_etc, "config/apps/dashboard/initializers/multitenant.rb")
    # OOD's own OOD_CLUSTERS (install's environment, then the dashboard's env), as the dashboard reads it.
    def clusters_dir
      [@env["OOD_CLUSTERS"], dashboard_env["OOD_CLUSTERS"]].map { |d| d.to_s.strip }.find { |d| !d.empty? } ||
        File.join(ood_etc, "config/clusters.d")
    end
    def dismiss_scancel = File.join(GEM_ROOT, "ood/bin/mt-dismiss-scancel")

    # Settings as the dashboard sees them: its env file, then this process's environment.
    def config
      @config ||= Config.from_env({ "OOD_CLUSTERS" => clusters_dir }.merge(dashboard_env)
                                    .merge(@env.to_h.select { |k, v| k.start_with?("MULTITENANT_") && !v.to_s.strip.empty? }))
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

    # A Slurm command through the one call site, reaching `target` (a Clusters target; plain commands
    # when nil) as discovery would.
    def command(program, *args, target: nil)
      Discovery._command(program, args, config.native(dataroot: nil, per_cluster: false).merge("targets" => [target || { "name" => nil }]))
    end

    def key_dir = KeyDir.new(config.key_dir, owner: config.key_owner)

    # drop_old: true keeps only the newest key (after a rotation, once the shares sealed with the old keys ended).
    def keygen(group: nil, site: false, rotate: false, drop_old: false)
      raise InputError, "rotate and drop old keys in two steps: ROTATE=1 now, DROP_OLD=1 once the shares sealed with the old key have ended" if rotate && drop_old

      if drop_old
        d = key_dir.drop_old(group: group, site: site)
        return ["kept key #{d[:kept].id} in #{d[:path]}; dropped #{d[:dropped]} older key(s): shares sealed with them no longer open"]
      end

      path = begin
        key_dir.generate(group: group, site: site, rotate: rotate)
      rescue Error => e
        # The core names mtshare's flags; here they are this task's settings.
        raise e.class, e.message.gsub("--rotate", "ROTATE=1").gsub("--drop-old", "DROP_OLD=1")
      end
      note = site ? " — readable by every user: it only hides shares from casual view" : ""
      ["wrote #{path}#{note}"]
    end

    # [problems, fine]: each problem says how to fix it.
    def doctor
      problems = []
      fine = []
      check = ->(ok, good, bad) { ok ? fine << good : problems << bad }
      targets = Clusters.targets(config).reject { |t| t["problem"] }
      targets.each { |t| doctor_slurm(t, targets.size > 1, problems, fine, check) }
      listed = doctor_clusters(problems, fine)
      doctor_legacy(listed, problems, fine)
      doctor_keys(problems, fine)
      doctor_key_acls(problems, fine)
      doctor_ood(problems, fine)
      doctor_code(problems, fine)
      [problems, fine]
    end

    # Slurm's settings discovery depends on, on one cluster (each cluster when several are mapped).
    def doctor_slurm(target, several, problems, fine, check)
      at = several ? " (#{target["name"]})" : ""
      conf = command("scontrol", "show", "config", target: target)
      get = ->(k) { conf[/^#{k}\s*=\s*(.*)$/, 1].to_s.strip }
      check.call(get.call("TrackWCKey").casecmp?("yes"), "Slurm tracks WCKeys#{at}",
                 "Slurm#{at}: TrackWCKey is off: set TrackWCKey=yes in slurm.conf and slurmdbd.conf")
      check.call(get.call("AccountingStorageEnforce").include?("wckeys"), "Slurm enforces WCKeys#{at}",
                 "Slurm#{at}: WCKeys are not enforced, anyone may publish: add wckeys to AccountingStorageEnforce")
      check.call(!get.call("PrivateData").include?("jobs"), "slurmctld shows jobs to all users#{at}",
                 "Slurm#{at}: PrivateData=jobs in slurm.conf hides other users' jobs from squeue, so nothing can be shared: remove jobs from PrivateData")
      doctor_accounting(check, target) if config.strategy.start_with?("sacct")
      where = ["name=#{config.wckey}", *("cluster=#{get.call("ClusterName")}" if several)]
      users = command("sacctmgr", "-n", "-P", "show", "wckey", "where", *where, "format=user", target: target).split.uniq
      check.call(!users.empty?, "users who may publish (--wckey=#{config.wckey})#{at}: #{users.join(", ")}",
                 "Slurm#{at}: nobody may submit with --wckey=#{config.wckey}: sacctmgr add user NAME wckey=#{config.wckey}#{" cluster=#{target["name"]}" if several}")
    rescue Error => e
      problems << "Slurm#{at}: #{e.message}"
    end

    # The sacct strategy asks slurmdbd, whose own PrivateData (slurmdbd.conf) hides other users' jobs from
    # `sacct --allusers` without an error: `sacctmgr show configuration` prints it after "SlurmDBD configuration:".
    def doctor_accounting(check, target)
      dbd = command("sacctmgr", "show", "configuration", target: target).split(/^SlurmDBD configuration:.*$/, 2)[1].to_s
      private_data = dbd[/^PrivateData\s*=\s*(.*)$/, 1].to_s.strip
      check.call(!private_data.split(",").include?("jobs"), "slurmdbd shows jobs to all users (strategy sacct)",
                 "Slurm: PrivateData=jobs in slurmdbd.conf hides other users' jobs from sacct, so strategy sacct finds " \
                 "no share: remove jobs from slurmdbd's PrivateData, or set MULTITENANT_STRATEGY=squeue")
    end

    # Each cluster discovery searches, reached as OOD reaches it: a mapping it cannot use is a problem.
    # Returns what they listed ({"jobs", "errors"} as Discovery._jobs; "unasked" counts the clusters
    # that could not be asked), for doctor_legacy.
    def doctor_clusters(problems, fine)
      listed = { "jobs" => [], "errors" => [], "unasked" => 0 }
      Clusters.targets(config).each do |t|
        if t["problem"]
          listed["unasked"] += 1
          next problems << "OOD: #{t["problem"]}"
        end

        got = Discovery._jobs(config.native(dataroot: nil, per_cluster: false).merge("targets" => [t]))
        listed["jobs"].concat(got["jobs"])
        errors = got["errors"]
        listed["errors"].concat(errors)
        next problems << "Slurm: #{errors.first}" unless errors.empty?
        next unless t["name"]

        fine << "Slurm: cluster #{t["name"]} answers#{" (-M #{t["cluster"]})" if t["cluster"]}#{" via #{t["submit_host"]}" if t["submit_host"]}"
      rescue Error => e
        listed["errors"] << e.message
        problems << "Slurm: #{"cluster #{t["name"]}: " if t["name"]}#{e.message}"
      end
      listed
    end

    # Running jobs that still publish in the first implementation's format, by owner ({owner => count},
    # owners in name order, as discovery's note counts them), from a Discovery._jobs listing.
    def legacy_owners(jobs)
      jobs.each_with_object(Hash.new(0)) do |job, by_owner|
        next unless job["name"].include?("|")

        by_owner[job["owner"]] += 1 if Envelope.parse(job["name"])["version"] == "legacy"
      rescue Error
        next # not a name of either format: list says so
      end.sort.to_h
    end

    # "2 running job(s) … (alice: 1, bob: 1)": how many, and whose (the first ten owners).
    def legacy_count(by_owner)
      owners = by_owner.first(10).map { |o, n| "#{o}: #{n}" }
      owners << "#{by_owner.size - 10} more owner(s): rake -f …/admin.rake list names them" if by_owner.size > 10
      "#{by_owner.values.sum} running job(s) publish in the first implementation's format (#{owners.join(", ")})"
    end

    # The migration window (README: Migrate from the first implementation): whether any running job on
    # the clusters discovery searches still publishes in the first implementation's format, whatever
    # MULTITENANT_LEGACY says, so the admin knows when it can be turned off.
    def doctor_legacy(listed, problems, fine)
      by_owner = legacy_owners(listed["jobs"])
      if by_owner.empty?
        unless listed["errors"].empty? && listed["unasked"].zero?
          return fine << "legacy: no running job publishes in the first implementation's format on the clusters that answered; " \
                         "the others could not be asked (see the problems below)"
        end

        return fine << "legacy: no running job publishes in the first implementation's format: MULTITENANT_LEGACY can be off" \
                       "#{config.legacy ? " (it is on: remove it from #{env_file}, then restart the dashboards)" : ""}"
      end

      if config.legacy
        fine << "legacy: #{legacy_count(by_owner)}; MULTITENANT_LEGACY is on and reads them, so the migration window must stay " \
                "open until their owners move to `mtshare publish` or the jobs end"
      else
        problems << "legacy: #{legacy_count(by_owner)}, which the dashboards do not read (MULTITENANT_LEGACY is off): their owners " \
                    "move to `mtshare publish`, or set MULTITENANT_LEGACY=true in #{env_file} while they do"
      end
    end

    def doctor_keys(problems, fine)
      dir = config.key_dir.to_s
      # This shell's MULTITENANT_KEY_DIR is checked here, but the dashboard reads its env file only.
      shell = @env["MULTITENANT_KEY_DIR"].to_s.strip
      board = dashboard_env["MULTITENANT_KEY_DIR"].to_s.strip
      board = Config::DEFAULTS[:key_dir] if board.empty?
      if !shell.empty? && File.expand_path(shell) != File.expand_path(board)
        problems << "keys: this shell's MULTITENANT_KEY_DIR=#{shell} is not the dashboard's (#{board}, from #{env_file}), so the dashboard " \
                    "would not find the keys checked here: MULTITENANT_KEY_DIR=#{shell} rake -f …/admin.rake install APPLY=1"
      end
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

    # A POSIX ACL entry beyond owner, group and other (a named user or group, a mask) on the key directory
    # or a key file lets more than the group read a key; a default ACL on the directory is copied onto
    # every key file made there later. getfacl prints both as text, with names an admin recognises,
    # and reads whatever filesystem (NFS too) offers, without a binary xattr parser here.
    def doctor_key_acls(problems, fine)
      dir = config.key_dir.to_s
      return unless File.directory?(dir) # doctor_keys says so

      before = problems.size
      [dir, *Dir.children(dir).sort.grep(/\.key\z/).map { |f| File.join(dir, f) }].each do |path|
        out, err, status = Open3.capture3(@getfacl, "--absolute-names", "--skip-base", "--omit-header", "--no-effective", "--", path)
        next problems << "keys: cannot read the ACL of #{path}: #{err.gsub(/\s+/, " ").strip}" unless status.success?

        entries = out.lines.map { |l| l.sub(/#.*/, "").strip }.reject(&:empty?)
        default, access = entries.partition { |e| e.start_with?("default:") }
        widening = access.reject { |e| e.match?(/\A(user|group|other)::/) }
        unless widening.empty?
          problems << "keys: #{path} has an ACL that widens who can read #{path == dir ? "the keys in it" : "it"} " \
                      "(#{widening.join(", ")}): setfacl -b #{path}"
        end
        next if default.empty?

        named = default.reject { |e| e.match?(/\Adefault:(user|group|other)::/) }
        problems << "keys: #{path} has a default ACL that every new key file there inherits " \
                    "(#{(named.empty? ? default : named).join(", ")}): setfacl -k #{path}"
      end
      fine << "keys: no ACL widens who can read #{dir} or its key files" if problems.size == before
    rescue Errno::ENOENT
      problems << "keys: cannot check key files' ACLs: getfacl not found (apt install acl)"
    end

    # The code every dashboard loads (the gem's lib and native library), the command every card's Delete
    # runs and the publisher every share's job runs, with every directory above them up to /, must be
    # root's alone: owned by root, not writable by group or others. An ACL granting write shows as group
    # write (its mask). A sticky world-writable directory (/tmp) lets anyone add a name in it: code must
    # not live under one.
    def doctor_code(problems, fine)
      before = problems.size
      seen = {}
      code_paths.each do |code, use|
        next unless File.exist?(code)

        ([code] + (File.directory?(code) ? tree(code) : [])).each do |path|
          chain(path).each do |p|
            next if seen[p]

            seen[p] = true
            line = code_problem(p, p == path ? "#{CODE_USES.fetch(use)} it" : "#{CODE_USES.fetch(use)} code under it")
            problems << line if line
          end
        end
      end
      fine << "code: the gem's lib and native library, the dismiss command, the publisher and every directory above them are root's alone" if problems.size == before
    end

    # Everything under dir, following symlinked subdirectories too (require follows them), each
    # directory once.
    def tree(dir, seen = {})
      real = File.realpath(dir)
      return [] if seen[real]

      seen[real] = true
      Dir.children(dir).sort.flat_map do |name|
        p = File.join(dir, name)
        File.directory?(p) ? [p, *tree(p, seen)] : [p]
      end
    rescue SystemCallError
      []
    end

    # path and every name the kernel looks up on the way to it, the file first: each directory as
    # written and, for each symlink on the way, every directory its target leads through (so a symlink
    # held in a directory someone else may change is seen, not only where it finally points).
    def chain(path)
      seen = ["/"]
      todo = (path.start_with?("/") ? path : File.join(Dir.pwd, path)).split("/").reject(&:empty?)
      cur = "/"
      hops = 0
      until todo.empty?
        part = todo.shift
        next if part == "."
        next cur = File.dirname(cur) if part == ".."

        nxt = File.join(cur, part)
        seen << nxt
        if File.symlink?(nxt) && (hops += 1) <= 40
          link = File.readlink(nxt)
          cur = "/" if link.start_with?("/")
          todo = link.split("/").reject(&:empty?) + todo
        else
          cur = nxt
        end
      end
      seen.uniq.reverse
    rescue SystemCallError
      [path]
    end

    # One line when root is not the only one who can change path (a symlink's own owner and mode do not matter).
    def code_problem(path, why)
      st = File.lstat(path)
      return if st.symlink? || (st.uid.zero? && (st.mode & 0o022).zero?)

      owner = "#{name_of { Etc.getpwuid(st.uid).name } || st.uid}:#{name_of { Etc.getgrgid(st.gid).name } || st.gid}"
      is = "#{path} is owned by #{owner}, mode #{format("%04o", st.mode & 0o7777)}"
      if st.directory? && st.sticky? && (st.mode & 0o002).nonzero?
        "code: #{is}: anyone may add names in it, and #{why}: move that code out of #{path}"
      else
        "code: #{is}, and #{why}: chown root:root #{path}; chmod go-w #{path}"
      end
    rescue SystemCallError => e
      "code: cannot check #{path}: #{e.message}"
    end

    def name_of
      yield
    rescue ArgumentError
      nil
    end

    # The gem's lib and native library as the dashboard loads them (MULTITENANT_LIB, and this gem's own),
    # the dismiss command (this gem's, and each mapped cluster's scancel override), and the publisher the
    # jobs run (an executable MULTITENANT_PUBLISHER: doctor_submit names one that is not).
    def code_paths
      return @code_paths if @code_paths

      env = dashboard_env
      libs = [File.join(GEM_ROOT, "lib"), env["MULTITENANT_LIB"].to_s.strip].reject(&:empty?).uniq
      paths = libs.flat_map { |lib| [File.join(lib, "multitenant.rb"), File.join(lib, "multitenant"), File.join(lib, "multitenant/multitenant.so")] }
                  .to_h { |p| [p, :dashboard] }
      paths[dismiss_scancel] = :delete
      config.clusters.each_value do |id|
        scancel = Clusters.entry(clusters_dir, id).dig("job", "bin_overrides", "scancel").to_s
        paths[scancel] ||= :delete unless scancel.empty?
      rescue InputError
        next # doctor_clusters names it
      end
      publisher = env["MULTITENANT_PUBLISHER"].to_s.strip
      publisher = MultiTenant.publisher_path if publisher.empty?
      paths[publisher] ||= :job if File.file?(publisher) && File.executable?(publisher)
      paths
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
      doctor_submit(problems, fine)
      env_conflicts.each { |c| problems << "OOD: #{c}" }
      missing = app_dirs.map { |d| File.basename(d) }.reject { |a| File.directory?(File.join(apps_dir, a)) }
      if missing.empty?
        fine << "OOD: apps installed in #{apps_dir}"
      else
        problems << "OOD: apps missing from #{apps_dir}: #{missing.join(", ")}: rake -f …/admin.rake install APPLY=1"
      end
      doctor_apps(problems)
      doctor_app_files(problems, fine) if missing.empty?
      doctor_app_settings(problems, fine)
      config.clusters.each_value do |id|
        # A missing, unreadable or non-Slurm entry is doctor_clusters' one line already.
        v2 = begin
          Clusters.entry(clusters_dir, id)
        rescue InputError
          next
        end
        next unless v2.dig("job", "adapter") == "slurm"

        scancel = v2.dig("job", "bin_overrides", "scancel").to_s
        ok = v2.dig("metadata", "hidden") == true && scancel.end_with?("mt-dismiss-scancel") && File.executable?(scancel)
        if ok
          fine << "OOD: cards use #{id}, whose Delete only dismisses"
        else
          problems << "OOD: cards use cluster #{id}, where Delete would run scancel on the shared job: point MULTITENANT_CLUSTERS at the hidden #{DISMISS_SUFFIX} entry (install writes it)"
        end
      end
      return unless config.clusters.empty?

      problems << if Dir[File.join(clusters_dir, "*.{yml,yaml}")].empty?
                    "OOD: MULTITENANT_CLUSTERS is not set and #{clusters_dir} has no cluster entry: point OOD_CLUSTERS at OOD's clusters.d, then rake -f …/admin.rake install APPLY=1"
                  else
                    "OOD: MULTITENANT_CLUSTERS is not set: cards get Slurm's cluster name and Delete may cancel shared jobs: rake -f …/admin.rake install APPLY=1"
                  end
    end

    # Where the service apps submit, and the publisher their jobs run.
    def doctor_submit(problems, fine)
      env = dashboard_env
      id = env["MULTITENANT_SUBMIT_CLUSTER"].to_s
      path = %w[yml yaml].map { |ext| File.join(clusters_dir, "#{id}.#{ext}") }.find { |p| File.file?(p) } || File.join(clusters_dir, "#{id}.yml")
      hidden = begin
        File.file?(path) && (YAML.safe_load(File.read(path)) || {}).dig("v2", "metadata", "hidden") == true
      rescue Psych::Exception
        false # the cluster loop reports invalid YAML
      end
      if id.empty?
        problems << "OOD: #{env_file} has no MULTITENANT_SUBMIT_CLUSTER, so the apps submit to a cluster named \"cluster\": rake -f …/admin.rake install APPLY=1"
      elsif !File.file?(path)
        problems << "OOD: MULTITENANT_SUBMIT_CLUSTER=#{id}, but #{path} does not exist: name a clusters.d entry, or rake -f …/admin.rake install APPLY=1"
      elsif hidden
        problems << "OOD: MULTITENANT_SUBMIT_CLUSTER=#{id} is a hidden cluster entry, so the apps cannot be launched: name a visible Slurm cluster, or rake -f …/admin.rake install APPLY=1"
      else
        fine << "OOD: the apps submit to cluster #{id}"
      end
      publisher = env["MULTITENANT_PUBLISHER"].to_s
      if publisher.empty?
        problems << "OOD: #{env_file} has no MULTITENANT_PUBLISHER, so jobs look for mtshare on PATH: rake -f …/admin.rake install APPLY=1"
      elsif !File.file?(publisher) || !File.executable?(publisher)
        problems << "OOD: MULTITENANT_PUBLISHER=#{publisher} is not an executable file: rake compile (or reinstall the gem), then rake -f …/admin.rake install APPLY=1"
      else
        fine << "OOD: jobs publish with #{publisher} (compute nodes must reach this path)"
      end
    end

    # Installed apps as OOD would run them.
    def doctor_apps(problems)
      Dir[File.join(apps_dir, "multitenant-*")].sort.each do |dir|
        script = File.join(dir, "template/script.sh.erb")
        if File.file?(script) && !File.executable?(script)
          problems << "OOD: #{script} is not executable, so its job fails with Permission denied: rake -f …/admin.rake install APPLY=1"
        end
        form = %w[form.yml.erb form.yml].map { |f| File.join(dir, f) }.find { |f| File.file?(f) }
        submit = %w[submit.yml.erb submit.yml].map { |f| File.join(dir, f) }.find { |f| File.file?(f) }
        next unless form && File.read(form).match?(/^\s*-\s*["']?auto_groups["']?\s*$/)
        next if submit && File.read(submit).match?(/^\s*accounting_id\s*:/)

        problems << "OOD: #{form} offers auto_groups and #{File.basename(submit || "submit.yml.erb")} sets no accounting_id, so the group would be submitted as the Slurm account: rake -f …/admin.rake install APPLY=1"
      end
    end

    # Installed apps that are not the gem's (an upgrade without install, or a file edited in place):
    # OOD would run templates this version does not know.
    def doctor_app_files(problems, fine)
      stale = app_dirs.flat_map do |dir|
        app = File.basename(dir)
        Dir.glob("**/*", base: dir).select { |f| File.file?(File.join(dir, f)) }.reject do |f|
          installed = File.join(apps_dir, app, f)
          File.file?(installed) && File.binread(installed) == File.binread(File.join(dir, f))
        end.map { |f| "#{app}/#{f}" }
      end
      if stale.empty?
        fine << "OOD: the installed apps are this gem's"
      else
        problems << "OOD: #{stale.size} app file(s) in #{apps_dir} differ from this gem's or are missing (#{stale.first(3).join(", ")}#{stale.size > 3 ? ", …" : ""}): rake -f …/admin.rake install APPLY=1"
      end
    end

    # What the service and client apps run on the compute nodes: the dashboard's settings, rendered into
    # each job script (the job itself sees none of the dashboard's env: ood_core submits --export=NONE).
    APP_COMMANDS = { "MULTITENANT_OLLAMA" => ["ollama", "the Ollama app"], "MULTITENANT_VLLM" => ["vllm", "the vLLM app"],
                     "MULTITENANT_CHAT_PYTHON" => ["python3", "the chat app (a Python with gradio and openai)"],
                     "MULTITENANT_POSTGRES_BIN" => ["initdb", "the database app's PostgreSQL (a directory of initdb, postgres, psql)"],
                     "MULTITENANT_MARIADB_BIN" => ["mariadbd", "the database app's MariaDB (a directory of mariadb-install-db, mariadbd, mariadb)"] }.freeze

    def doctor_app_settings(problems, fine)
      env = dashboard_env
      APP_COMMANDS.each do |var, (default, what)|
        value = env[var].to_s.strip
        if value.empty?
          fine << "OOD: #{what} runs `#{default}` from the compute nodes' PATH (or its module); #{var} in #{env_file} names another"
        elsif !value.start_with?("/") || value.match?(/[[:cntrl:]]/)
          problems << "OOD: #{var}=#{value} is not an absolute path, so #{what} cannot run it on the compute nodes: set #{var} to an absolute path in #{env_file}"
        elsif var.end_with?("_BIN") ? File.directory?(value) : (File.file?(value) && File.executable?(value))
          fine << "OOD: #{what} runs #{value} (here too: check the compute nodes see the same file)"
        elsif var.end_with?("_BIN") && File.exist?(value)
          # On PATH a file is no directory: the job would run whatever else PATH has.
          problems << "OOD: #{var}=#{value} is a file here, not a directory: set #{var} to the directory that holds #{default} in #{env_file}"
        elsif File.directory?(value)
          problems << "OOD: #{var}=#{value} is a directory here, not a program: set #{var} to the program in #{env_file}"
        else
          fine << "OOD: #{what} runs #{value} on the compute nodes (not on this host, so not checked here)"
        end
      end
      doctor_vllm_listen(env["MULTITENANT_VLLM_LISTEN"].to_s.strip, problems, fine)
    end

    # How vLLM listens behind its gate (Apps.vllm_listen): a private Unix socket unless "loopback".
    def doctor_vllm_listen(value, problems, fine)
      case value
      when "", "unix"
        fine << "OOD: the vLLM app serves on a private Unix socket (vllm serve --uds: vLLM 0.9 or later); MULTITENANT_VLLM_LISTEN=loopback in #{env_file} for an older vLLM"
      when "loopback"
        fine << "OOD: the vLLM app serves on 127.0.0.1 (MULTITENANT_VLLM_LISTEN=loopback): other jobs on the node reach it around the gate: give vLLM jobs whole nodes, or use vLLM 0.9 or later and remove the setting"
      else
        problems << "OOD: MULTITENANT_VLLM_LISTEN=#{value} is neither unix nor loopback (the vLLM app uses a Unix socket): set it to one of them in #{env_file}, or remove it"
      end
    end

    def app_dirs = Dir[File.join(GEM_ROOT, "ood/apps/*")].select { |d| File.directory?(d) }.sort

    # One line per cluster the last `list` could not ask.
    def list_problems = @list_problems || []

    # One row per running job with the WCKey; decoded where this host can read the key.
    def list
      listed = Discovery._jobs(config.native(dataroot: nil, per_cluster: false))
      rows = listed["jobs"].map do |job|
        next [job["id"], job["cluster"], job["owner"], "-", "-", "-", job["name"].size.to_s, "not shared yet"] unless job["name"].include?("|")

        info = Envelope.parse(job["name"])
        share = open_share(job)
        [job["id"], job["cluster"], job["owner"], info["group"], share ? share.dig("message", "app") : "-", info["version"], info["size"].to_s,
         info["version"] == "legacy" ? legacy_opens(share) : (share ? "yes" : "no")]
      rescue Error => e
        [job["id"], job["cluster"], job["owner"], "-", "-", "-", job["name"].size.to_s, e.message]
      end
      header = %w[JOB CLUSTER OWNER GROUP APP FORMAT SIZE OPENS-HERE]
      widths = ([header] + rows).transpose.map { |col| col.map(&:size).max }
      lines = ([header] + rows).map { |r| r.each_with_index.map { |c, i| i == r.size - 1 ? c : c.ljust(widths[i]) }.join("  ") }
      lines << "no running job with --wckey=#{config.wckey}" if rows.empty? && listed["errors"].empty?
      legacy = legacy_owners(listed["jobs"])
      unless legacy.empty?
        lines << "legacy: #{legacy_count(legacy)}: their owners move to `mtshare publish`; " \
                 "#{config.legacy ? "MULTITENANT_LEGACY is on: keep it on until then" : "the dashboards do not read them (MULTITENANT_LEGACY is off)"}"
      end
      # A cluster that cannot be asked is one line of list_problems; the others are still listed.
      @list_problems = listed["errors"]
      lines
    end

    # A legacy name opens for anyone (its key is public): list decodes it whatever MULTITENANT_LEGACY
    # says, so the admin sees whose app still publishes that way.
    def open_share(job)
      info = Envelope.parse(job["name"])
      keys = info["version"] == "legacy" ? [] : key_dir.opening_keys(info["group"])
      Envelope.open(job["name"], keys: keys, job_id: job["id"], owner: job["owner"], cluster: job["cluster"],
                                 restarts: job["restarts"], legacy: true)
    rescue Error
      nil
    end

    # list's OPENS-HERE for a job in the first implementation's format: whether the dashboards read it.
    def legacy_opens(share)
      return "no (legacy format, does not decode)" unless share

      config.legacy ? "yes (legacy format, read while MULTITENANT_LEGACY is on)" : "no (legacy format, MULTITENANT_LEGACY is off)"
    end

    def decode(job_id: nil, name: nil, owner: nil, cluster: nil, restarts: nil)
      if job_id && !name
        job = Discovery._jobs(config.native(dataroot: nil, per_cluster: false))["jobs"]
                       .find { |j| [j["id"], "#{j["id"]}@#{j["cluster"]}"].include?(job_id.to_s) }
        raise InputError, "no running job #{job_id} with --wckey=#{config.wckey}" unless job

        name = job["name"]
        owner ||= job["owner"]
        job_id = job["id"]
        cluster ||= job["cluster"]
        restarts ||= job["restarts"]
      end
      raise InputError, "give JOB=<id>, or NAME=<job name> with JOB_ID=, OWNER= and CLUSTER= (RESTARTS= after a requeue)" unless name && job_id && owner

      info = Envelope.parse(name)
      keys = info["version"] == "legacy" ? [] : key_dir.opening_keys(info["group"])
      share = Envelope.open(name, keys: keys, job_id: job_id, owner: owner, cluster: cluster, restarts: restarts,
                                  legacy: config.legacy)
      m = share["message"]
      ["job #{job_id}#{"@#{cluster}" if cluster} of #{owner}: group #{share["group"]}, format #{share["version"]}, key #{share["key_id"] || "-"}, #{share["size"]} of 1024 characters",
       "app #{m["app"]}, #{m["method"]}, delivered by #{m["delivery"]}, session #{m["session_id"]}",
       "allow #{m["allow"] ? m["allow"].join(",") : "(whole group)"}, expires #{m["expires_at"] ? Time.at(m["expires_at"]).utc : "never"}",
       *m["connection"].map { |k, v| "  #{k} = #{v.inspect}" }]
    end

    # Every file install would write: [[path, content, mode]].
    def install_plan
      plan = app_dirs.flat_map do |dir|
        Dir.glob("**/*", base: dir).select { |f| File.file?(File.join(dir, f)) }.map do |f|
          src = File.join(dir, f)
          # OOD gives the rendered script.sh its template's mode, then executes it.
          [File.join(apps_dir, File.basename(dir), f), File.read(src), File.executable?(src) ? 0o755 : 0o644]
        end
      end
      plan << [initializer_path, File.read(File.join(GEM_ROOT, "ood/initializers/multitenant.rb")), 0o644]
      mapping = {}
      submit = nil
      @notes = []
      # Every entry OOD reads (clusters.d's *.yml and *.yaml), in file-name order.
      entries = Dir[File.join(clusters_dir, "*.{yml,yaml}")].sort_by { |p| File.basename(p) }
      entries.each do |path|
        id = File.basename(path).sub(/\.ya?ml\z/, "")
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
        # Without job.cluster, the Slurm cluster is the one the entry's own commands reach (its conf, bin).
        slurm_name = v2.dig("job", "cluster") ||
                     command("scontrol", "show", "config", target: Clusters.reach(v2["job"]))[/^ClusterName\s*=\s*(\S+)/, 1]
        if slurm_name && mapping.key?(slurm_name)
          @notes << "note: #{File.basename(path)} reaches Slurm cluster #{slurm_name}, as an earlier entry does: its cards use #{mapping[slurm_name]}"
        elsif slurm_name
          mapping[slurm_name] = "#{id}#{DISMISS_SUFFIX}"
        end
        submit ||= id
      end
      @notes << "warning: no visible Slurm entry in #{clusters_dir}: nothing mapped, so no card is written (OOD_CLUSTERS names another directory?)" if mapping.empty?
      plan << [env_file, env_with_block(managed_env(mapping, submit)), 0o644]
      plan
    end

    # The admin may choose the publisher (a copy the compute nodes reach) and the submit cluster by
    # setting them in install's own environment; the block is the one place that sets them.
    def managed_env(mapping, submit)
      current = managed_values(current_env)
      # The admin's choice: install's environment, else what the block already says (kept across installs).
      chosen = ->(name, default) { [@env[name], current[name]].map { |v| v.to_s.strip }.find { |v| !v.empty? } || default }
      publisher = chosen.("MULTITENANT_PUBLISHER", MultiTenant.publisher_path)
      # A publisher inside a multitenant gem is install's own default: follow the gem on upgrade.
      publisher = MultiTenant.publisher_path if @env["MULTITENANT_PUBLISHER"].to_s.strip.empty? && publisher.match?(%r{/multitenant[^/]*/libexec/mtshare\z})
      vars = { "MULTITENANT_LIB" => File.join(GEM_ROOT, "lib"), "MULTITENANT_PUBLISHER" => publisher }
      vars["MULTITENANT_CLUSTERS"] = mapping.map { |k, v| "#{k}=#{v}" }.join(",") unless mapping.empty?
      submit = chosen.("MULTITENANT_SUBMIT_CLUSTER", submit)
      vars["MULTITENANT_SUBMIT_CLUSTER"] = submit if submit
      OPTIONAL.each { |name| (v = chosen.(name, nil)) && vars[name] = v }
      vars
    end

    def current_env = File.file?(env_file) ? File.read(env_file, encoding: "UTF-8").scrub : ""

    def env_with_block(vars)
      block = [BLOCK_BEGIN, *vars.map { |k, v| "#{k}=#{v}" }, BLOCK_END]
      stripped = current_env.sub(/^#{Regexp.escape(BLOCK_BEGIN)}\n.*?^#{Regexp.escape(BLOCK_END)}\n?/m, "")
      "#{stripped}#{"\n" unless stripped.empty? || stripped.end_with?("\n")}#{block.join("\n")}\n"
    end

    # One line per setting, outside the managed block, of a variable the block sets: whichever line
    # comes last wins, so an old line silently overrides install's value or hides that it is stale.
    def env_conflicts(text = current_env, values = managed_values(text))
      inside = false
      text.lines(chomp: true).each_with_index.filter_map do |line, i|
        inside = true if line == BLOCK_BEGIN
        if inside
          inside = false if line == BLOCK_END
          next
        end
        name = line[/\A\s*(?:export\s+)?(MULTITENANT_\w+)\s*=/, 1]
        next unless MANAGED.include?(name) && (!OPTIONAL.include?(name) || values.key?(name))

        "#{env_file}:#{i + 1} sets #{name} outside the managed block; remove it " \
          "(the managed block's value is #{values[name] || "unset: run install APPLY=1"})"
      end
    end

    def managed_values(text)
      body = text[/^#{Regexp.escape(BLOCK_BEGIN)}\n(.*?)^#{Regexp.escape(BLOCK_END)}/m, 1].to_s
      body.lines(chomp: true).filter_map { |l| l.split("=", 2) if l.include?("=") }.to_h
    end

    # Dry run unless apply: lists what would change; writes nothing that is already as it should be.
    def install(apply: false)
      plan = install_plan
      planned_env = plan.find { |path, _, _| path == env_file }[1]
      # Line numbers as the admin sees the file: as it is (dry run), as it will be (apply).
      warnings = env_conflicts(apply ? planned_env : current_env, managed_values(planned_env)).map { |c| "warning: #{c}" }
      warnings += @notes
      changes = plan.reject do |path, content, mode|
        File.file?(path) && File.binread(path) == content.b && (File.stat(path).mode & 0o777) == mode
      end
      return warnings + ["everything is installed and up to date"] if changes.empty?

      # What the dashboard's env will say, so a dry run shows the values, not only the file's name.
      block = changes.any? { |path, _, _| path == env_file } ? managed_values(planned_env).map { |k, v| "  #{k}=#{v}" } : []
      warnings + changes.map do |path, content, mode|
        verb = File.exist?(path) ? "update" : "create"
        if apply
          FileUtils.mkdir_p(File.dirname(path))
          tmp = "#{path}.#{Process.pid}.tmp"
          File.write(tmp, content)
          File.chmod(mode, tmp)
          File.rename(tmp, path)
        end
        "#{apply ? verb.sub(/e\z/, "") + "ed" : "would #{verb}"} #{path}"
      end + block + (apply ? [] : ["dry run: nothing was changed; run again with APPLY=1"])
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
