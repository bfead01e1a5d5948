# frozen_string_literal: true

require "timeout"
require "yaml"

# The real test cluster (spec/cluster/testcluster) and helpers to act on it as real users.
module ClusterHelpers
  SCRIPT = File.join(ROOT, "spec/cluster/testcluster")
  LAB = "/var/tmp/multitenant-specs"

  # Brings the cluster up once per run; skips (or fails under CI) where that cannot be done.
  def self.up!
    return @up if defined?(@up)

    @up = if !Process.uid.zero?
            "needs root to start Slurm and create users"
          else
            out, status = Open3.capture2e(SCRIPT, "up")
            status.success? ? nil : "testcluster up failed:\n#{out}"
          end
  end

  def require_cluster!
    why = ClusterHelpers.up!
    return unless why
    raise "CI=true: the integration specs must run: #{why}" if ENV["CI"] == "true"

    skip why
  end

  # A world-traversable directory with mtshare and a key dir, shared by every test user.
  def self.lab
    @lab ||= begin
      FileUtils.rm_rf(LAB)
      FileUtils.mkdir_p(LAB, mode: 0o755)
      File.chmod(0o755, LAB)
      FileUtils.cp(MultiTenant.publisher_path, File.join(LAB, "mtshare"))
      MultiTenant::KeyDir.new(File.join(LAB, "keys")).generate(group: "mtclass")
      # OOD's clusters.d as a site with both test clusters would have it (install's dismiss entries).
      FileUtils.mkdir_p(File.join(LAB, "clusters.d"))
      { "ood_mt" => {}, "ood_beta" => { "cluster" => "mtbeta" } }.each do |id, job|
        doc = { "v2" => { "metadata" => { "title" => id, "hidden" => true }, "job" => { "adapter" => "slurm" }.merge(job) } }
        File.write(File.join(LAB, "clusters.d", "#{id}.yml"), YAML.dump(doc))
      end
      LAB
    end
  end

  def lab = ClusterHelpers.lab
  def key_dir = File.join(lab, "keys")

  def run_as(user, *cmd, env: {}, chdir: lab)
    vars = { "PATH" => "/usr/local/bin:/usr/bin:/bin" }.merge(env).map { |k, v| "#{k}=#{v}" }
    Open3.capture3("runuser", "-u", user, "--", "env", "-i", *vars, *cmd, chdir: chdir)
  end

  def poll(what, timeout: 30)
    Timeout.timeout(timeout, RuntimeError, "timed out waiting for #{what}") do
      loop do
        result = yield
        return result if result

        sleep 0.2
      end
    end
  end

  def job_name(id)
    out, = Open3.capture2("squeue", "-h", "-j", id.to_s, "-O", "Name:")
    out.chomp
  end

  def running?(id)
    out, = Open3.capture2("squeue", "-h", "-t", "R", "-j", id.to_s, "-o", "%i")
    out.strip == id.to_s
  end

  def in_accounting?(id)
    out, = Open3.capture2("sacct", "-n", "-X", "-P", "-a", "--state=RUNNING", "-j", id.to_s, "--format=JobIDRaw")
    out.lines.map(&:strip).include?(id.to_s)
  end

  # Submits a job as `owner` that publishes itself with mtshare, and waits until it is shared and
  # visible to both discovery strategies (wait: false: the caller waits, with wait_published, for
  # several submitted at once).
  def submit_share(owner:, app: "Ollama_API", group: "mtclass", args: [], wckey: "multitenant", sleep_for: 900, wait: true)
    publish = [File.join(lab, "mtshare"), "publish", "--group", group, "--app", app, *args].map { |a| Shellwords.escape(a) }.join(" ")
    script = "#{publish} || exit 1; exec sleep #{sleep_for}"
    wck = wckey ? ["--wckey=#{wckey}"] : []
    out, err, = run_as(owner, "sbatch", "--parsable", *wck, "-J", "service", "-o", "/dev/null", "--chdir", lab,
                       "--wrap", script, env: { "MULTITENANT_KEY_DIR" => key_dir })
    id = out.strip
    raise "sbatch failed: #{err}" unless id.match?(/\A\d+\z/)

    (@jobs ||= []) << id
    wait_published(id) if wait
    id
  end

  # Waits until each of these jobs is shared and visible to both discovery strategies.
  def wait_published(*ids)
    ids.each { |id| poll("job #{id} to publish") { job_name(id).include?("|") } }
    ids.each { |id| poll("job #{id} in accounting") { in_accounting?(id) } }
  end

  def plain_job(user)
    out, err, = run_as(user, "sbatch", "--parsable", "-J", "plain", "-o", "/dev/null", "--wrap", "sleep 900")
    raise "sbatch failed: #{err}" unless out.strip.match?(/\A\d+\z/)

    (@jobs ||= []) << out.strip
    out.strip
  end

  def cancel_jobs
    system("scancel", *@jobs) if @jobs&.any?
    @jobs = []
    FileUtils.rm_rf(File.join(lab, "home"))
  end

  # ------------------------------------------------------------------ several clusters
  # The test cluster is two Slurm clusters in one slurmdbd (spec/cluster/testcluster): mtcluster, the
  # default, and BETA. A job id names a job only with its cluster (both count from FirstJobId=1), so jobs
  # submitted with these helpers are kept apart from @jobs, whose bare ids cancel_jobs cancels on the
  # default cluster: call cancel_cluster_jobs for them.
  BETA = "mtbeta"
  BETA_CONF = "/etc/slurm-mtbeta/slurm.conf"

  # `program -M cluster args...` from the default config; its stdout without the "CLUSTER: <name>" line
  # squeue -M prints first.
  def slurm_on(cluster, program, *args)
    out, = Open3.capture3(program, "-M", cluster, *args)
    out.lines.reject { |l| l.start_with?("CLUSTER: ") }.join
  end

  # The name Slurm gives the one node of the test cluster `cluster` (`sinfo %N`): a share's host must
  # be a node of its job. On mtcluster it is this host's short name (what `hostname` says in a job
  # there, as OOD's host=$(hostname) publishes it); on mtbeta it is "mtbeta1", a NodeName whose
  # NodeHostname is this host, so `hostname` in a job there does not name its node.
  def node_of(cluster = "mtcluster")
    (@node_of ||= {})[cluster] ||= slurm_on(cluster, "sinfo", "-h", "-o", "%N").strip.tap do |n|
      raise "sinfo -M #{cluster} names no node" if n.empty?
    end
  end

  def job_name_on(cluster, id) = slurm_on(cluster, "squeue", "-h", "-j", id.to_s, "-O", "Name:").chomp
  def running_on?(cluster, id) = slurm_on(cluster, "squeue", "-h", "-t", "R", "-j", id.to_s, "-o", "%i").strip == id.to_s

  def in_accounting_on?(cluster, id)
    slurm_on(cluster, "sacct", "-n", "-X", "-P", "-a", "--state=RUNNING", "-j", id.to_s, "--format=JobIDRaw")
      .lines.map(&:strip).include?(id.to_s)
  end

  # `sbatch --parsable -M cluster args...` as `user`; returns the job id. With jobid:, first raises the
  # cluster's next job id to it (testcluster jobid), so the job gets that id, e.g. one the other cluster
  # has; raises when it cannot (the cluster's counter is already past it).
  def sbatch_on(cluster, user, *args, env: {}, jobid: nil)
    if jobid
      out, status = Open3.capture2e(SCRIPT, "jobid", cluster, jobid.to_s)
      raise "testcluster jobid #{cluster} #{jobid} failed: #{out}" unless status.success?
    end
    out, err, = run_as(user, "sbatch", "--parsable", "-M", cluster, *args, env: env)
    id = out.strip.split(";").first.to_s # --parsable -M prints "<id>;<cluster>"
    raise "sbatch -M #{cluster} as #{user} failed: #{err}" unless id.match?(/\A\d+\z/)

    ((@cluster_jobs ||= {})[cluster] ||= []) << id
    raise "job #{id} on #{cluster} is not the job id #{jobid} asked for: its counter was past it" if jobid && id != jobid.to_s

    id
  end

  # An id the next job on each of `clusters` can get with sbatch_on(..., jobid:): one past the highest each
  # has given (learnt from a held probe job on each, cancelled at once).
  def common_next_job_id(*clusters)
    clusters.map do |cluster|
      probe = sbatch_on(cluster, "mtmember", "--hold", "-J", "probe", "-o", "/dev/null", "--chdir", lab, "--wrap", "true")
      system("scancel", "-M", cluster, probe)
      @cluster_jobs[cluster].delete(probe)
      probe.to_i
    end.max + 1
  end

  # submit_share on `cluster`: a job of `owner` that publishes itself, once it is shared and in accounting.
  def submit_share_on(cluster, owner:, app: "Ollama_API", group: "mtclass", args: [], wckey: "multitenant", sleep_for: 900, jobid: nil)
    publish = [File.join(lab, "mtshare"), "publish", "--group", group, "--app", app, *args].map { |a| Shellwords.escape(a) }.join(" ")
    wck = wckey ? ["--wckey=#{wckey}"] : []
    id = sbatch_on(cluster, owner, *wck, "-J", "service", "-o", "/dev/null", "--chdir", lab,
                   "--wrap", "#{publish} || exit 1; exec sleep #{sleep_for}", env: { "MULTITENANT_KEY_DIR" => key_dir }, jobid: jobid)
    poll("job #{id} on #{cluster} to publish") { job_name_on(cluster, id).include?("|") }
    poll("job #{id} on #{cluster} in accounting") { in_accounting_on?(cluster, id) }
    id
  end

  def plain_job_on(cluster, user, name: "plain", jobid: nil)
    sbatch_on(cluster, user, "-J", name, "-o", "/dev/null", "--chdir", lab, "--wrap", "sleep 900", jobid: jobid)
  end

  def cancel_cluster_jobs
    (@cluster_jobs || {}).each { |cluster, ids| system("scancel", "-M", cluster, *ids) unless ids.empty? }
    @cluster_jobs = {}
  end

  # A data root owned by `user`, as OOD would have it.
  def dataroot_for(user)
    dir = File.join(lab, "home", user, "ondemand/data/sys/dashboard")
    FileUtils.mkdir_p(dir)
    pw = Etc.getpwnam(user)
    FileUtils.chown_R(pw.uid, pw.gid, File.join(lab, "home", user))
    FileUtils.chmod(0o700, File.join(lab, "home", user))
    File.chmod(0o755, File.join(lab, "home"))
    dir
  end

  # Runs MultiTenant.discover in a Ruby process as `user`; returns {"specs", "errors", "cards"}.
  def clusters_dir = File.join(lab, "clusters.d")

  def discover_as(user, strategy: "squeue", dataroot: dataroot_for(user), legacy: false, strict: false, now: nil,
                  clusters: { "mtcluster" => "ood_mt" }, env: {})
    script = <<~RUBY
      require "multitenant"; require "json"
      config = MultiTenant::Config.new(key_dir: #{key_dir.inspect}, strategy: #{strategy.inspect}, legacy: #{legacy},
                                       clusters: #{clusters.inspect}, clusters_dir: #{clusters_dir.inspect},
                                       host_domains: ENV["MULTITENANT_HOST_DOMAINS"])
      specs = MultiTenant.discover#{strict ? "!" : ""}(dataroot: #{dataroot.inspect}, config: config, now: #{now.inspect})
      puts JSON.generate("specs" => specs, "errors" => MultiTenant.errors, "cards" => MultiTenant.cards,
                         "warnings" => MultiTenant.warnings, "notes" => MultiTenant.notes)
    RUBY
    out, err, status = run_as(user, RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", script, env: env)
    raise "discover as #{user} failed: #{err}" unless status.success?

    JSON.parse(out.lines.last)
  end

  # A running job of `owner` (on `cluster`, else the default one) renamed with a name in the first
  # implementation's format for mtclass, sealed as it seals (the real gzip and openssl; key and IV from
  # the public job id and owner): its id. `connection`: the published values (default: the node as host).
  def legacy_share(owner: "mtowner", app: "Legacy_API", cluster: nil, connection: nil)
    args = ["--wckey=multitenant", "-J", "legacy", "-o", "/dev/null", "--chdir", lab, "--wrap", "sleep 900"]
    id = if cluster
           sbatch_on(cluster, owner, *args)
         else
           out, err, = run_as(owner, "sbatch", "--parsable", *args)
           raise "sbatch failed: #{err}" unless out.strip.match?(/\A\d+\z/)

           ((@jobs ||= []) << out.strip).last
         end
    connection ||= { "host" => node_of(cluster || "mtcluster") }
    text = "{'mtu':'','mti':'0f8fad5b-d9cb-469f-a165-70867728950e','mta':'#{app}','mtm':'card','mtd':'sys/multitenant-delivery_default'}" \
           "|{#{connection.map { |k, v| "'#{k}':'#{v}'" }.join(",")}}"
    hex = ->(t, n) { t.unpack1("H*").ljust(n, "0") }
    env = { "M" => text, "K" => hex.call("#{id}#{owner}", 64), "I" => hex.call("#{id}#{id}", 32) }
    enc, = Open3.capture2(env, "bash", "-c", %(printf %s "$M" | gzip | openssl enc -aes-256-cbc -e -a -A -K "$K" -iv "$I"))
    run_as(owner, "scontrol", *(cluster ? ["-M", cluster] : []), "update", "JobId=#{id}", "JobName=sys/dashboard|mtclass|#{enc.strip}")
    name = -> { cluster ? job_name_on(cluster, id) : job_name(id) }
    poll("legacy rename of #{id}") { name.call.start_with?("sys/dashboard|") && (cluster ? running_on?(cluster, id) : running?(id)) }
    id
  end
end
