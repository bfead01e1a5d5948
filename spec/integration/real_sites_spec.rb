# frozen_string_literal: true

require "securerandom"
require "base64"

# What real sites do to discovery, on the real test cluster as real users: several clusters, users'
# Slurm variables, hidden partitions, requeues, floods of names, many shares from one owner.
RSpec.describe "discovery at a real site", :cluster do
  before { require_cluster! }
  after do
    system("scancel", "-M", "mtbeta", *@beta, exception: false) if @beta&.any?
    @beta = []
    cancel_cluster_jobs
    cancel_jobs
  end

  # A job of `owner` that publishes itself with mtshare (sealed for its own cluster and run) after
  # `delay` seconds, submitted with `sbatch_args`; returns its id once published.
  def share_on(owner:, sbatch_args: [], app: "Ollama_API", delay: nil, wait: true)
    beta = sbatch_args.include?("mtbeta")
    # The host a share names must be a node of its job: the cluster's one node.
    publish = [File.join(lab, "mtshare"), "publish", "--group", "mtclass", "--app", app, "--set", "host=#{node_of(beta ? "mtbeta" : "mtcluster")}"]
    script = "#{delay ? "#{delay}; " : ""}#{Shellwords.join(publish)} || exit 1; exec sleep 900"
    out, err, = run_as(owner, "sbatch", "--parsable", "--wckey=multitenant", "-J", "service", "-o", "/dev/null",
                       "--chdir", lab, *sbatch_args, "--wrap", script, env: { "MULTITENANT_KEY_DIR" => key_dir })
    id = out.strip.split(";").first.to_s
    raise "sbatch failed: #{err}" unless id.match?(/\A\d+\z/)

    beta ? (@beta ||= []) << id : (@jobs ||= []) << id
    poll("job #{id} to publish", timeout: 60) { name_on(id, beta ? "mtbeta" : nil).include?("|") } if wait
    id
  end

  def name_on(id, cluster)
    out, = Open3.capture2("squeue", *(cluster ? ["-M", cluster] : []), "-h", "-j", id.to_s, "-O", "Name:")
    out.lines.map(&:chomp).reject { |l| l.start_with?("CLUSTER:") }.join
  end

  it "finds shares on every mapped cluster, as OOD asks each, with keys that cannot collide" do
    # The same job id on both clusters: the first id neither cluster has given yet.
    n = common_next_job_id("mtcluster", "mtbeta")
    a = submit_share_on("mtcluster", owner: "mtowner", args: ["--set", "host=#{node_of("mtcluster")}"], jobid: n)
    b = submit_share_on("mtbeta", owner: "mtowner", app: "On_beta", args: ["--set", "host=#{node_of("mtbeta")}"], jobid: n)
    expect(b).to eq(a)
    root = dataroot_for("mtmember")
    both = { "mtcluster" => "ood_mt", "mtbeta" => "ood_beta" }
    result = discover_as("mtmember", dataroot: root, clusters: both)
    expect(result["errors"]).to eq([])
    expect(result["specs"].keys).to contain_exactly("#{a}@mtcluster", "#{b}@mtbeta")
    beta = result["specs"]["#{b}@mtbeta"]
    expect(beta["info"]).to include("cluster" => "mtbeta", "ood_cluster" => "ood_beta")
    expect(beta["connection"]).to include("jobid" => b)
    beta_db = File.join(root, "batch_connect/db", beta["info"]["card_id"])
    expect(JSON.parse(File.read(beta_db))).to include("cluster_id" => "ood_beta", "job_id" => b)
    expect(result["cards"]["created"].size).to eq(2)

    # Only mtcluster mapped: the single-cluster shape, keyed by the bare job id; beta's share is not seen.
    one = discover_as("mtmember", dataroot: dataroot_for("mtprimary"), clusters: { "mtcluster" => "ood_mt" })
    expect(one["specs"].keys).to eq([a])

    # A mapping whose clusters.d entry is missing is refused in one line, and beta's card stays.
    broken = discover_as("mtmember", dataroot: root, clusters: both.merge("mtbeta" => "nosuch"))
    expect(broken["errors"]).to eq(["MULTITENANT_CLUSTERS maps Slurm cluster mtbeta to OOD cluster nosuch, but no " \
                                    "#{clusters_dir}/nosuch.yml: its shares are left as they were; fix the mapping or run " \
                                    "rake -f …/admin.rake install APPLY=1"])
    expect(broken["cards"]["removed"]).to eq([])
    expect(File.exist?(beta_db)).to be(true)
    # A fresh process has no earlier choice to keep (a live refresh keeps it: spec/clusters_spec.rb).
    expect(broken["specs"].keys).to eq(["#{a}@mtcluster"])
  end

  it "sees the same shares whatever Slurm variables the user has set" do
    id = share_on(owner: "mtowner")
    env = { "SQUEUE_PARTITION" => "nosuch", "SQUEUE_USERS" => "root", "SQUEUE_STATES" => "PD", "SLURM_CLUSTERS" => "nosuch",
            "SQUEUE_FORMAT2" => "JobID", "SQUEUE_SORT" => "-i", "SACCT_FEDERATION" => "1", "SLURM_TIME_FORMAT" => "%s" }
    %w[squeue sacct].each do |strategy|
      poll("job #{id} in accounting") { in_accounting?(id) } if strategy == "sacct"
      result = discover_as("mtmember", strategy: strategy, env: env)
      expect([result["errors"], result["specs"].keys]).to eq([[], [id]]), strategy
    end
  end

  it "with strategy sacct where slurmdbd hides other users' jobs (its PrivateData=jobs), asks squeue as OOD does and says why" do
    id = share_on(owner: "mtowner")
    bin = File.join(lab, "private-accounting")
    FileUtils.mkdir_p(bin)
    File.chmod(0o755, bin)
    %w[squeue scontrol].each { |c| FileUtils.ln_sf("/usr/bin/#{c}", File.join(bin, c)) }
    # As slurmdbd with PrivateData=jobs answers a member who has no job: nothing, and no error.
    File.write(File.join(bin, "sacct"), "#!/bin/sh\nexit 0\n")
    File.write(File.join(bin, "sacctmgr"), <<~SH)
      #!/bin/sh
      /usr/bin/sacctmgr "$@" | awk '/^SlurmDBD configuration/ { dbd = 1 } dbd && /^PrivateData/ { print "PrivateData            = jobs"; next } { print }'
    SH
    %w[sacct sacctmgr].each { |c| File.chmod(0o755, File.join(bin, c)) }
    script = <<~RUBY
      require "multitenant"; require "json"
      config = MultiTenant::Config.new(key_dir: #{key_dir.inspect}, strategy: "sacct", bin_dir: #{bin.inspect},
                                       clusters: { "mtcluster" => "ood_mt" }, clusters_dir: #{clusters_dir.inspect})
      specs = MultiTenant.discover(config: config)
      puts JSON.generate("specs" => specs.keys, "warnings" => MultiTenant.warnings, "errors" => MultiTenant.errors)
    RUBY
    out, err, status = run_as("mtmember", RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", script)
    expect(status).to be_success, err
    result = JSON.parse(out.lines.last)
    expect(result).to include("specs" => [id], "errors" => [])
    expect(result["warnings"]).to eq(["MULTITENANT_STRATEGY=sacct, but slurmdbd's PrivateData=jobs hides other users' jobs from sacct: " \
                                      "asking squeue instead (remove jobs from slurmdbd's PrivateData, or set MULTITENANT_STRATEGY=squeue)"])
    expect(err).to include("multitenant: MULTITENANT_STRATEGY=sacct, but slurmdbd's PrivateData=jobs")
  end

  it "finds a share in a hidden partition, as OOD's own listing does (--all)" do
    node = `hostname -s`.strip
    system("scontrol", "create", "PartitionName=mthidden", "Nodes=#{node}", "Hidden=YES", "State=UP", exception: true)
    id = share_on(owner: "mtowner", sbatch_args: ["-p", "mthidden"])
    hidden_from_plain_squeue, = run_as("mtmember", "squeue", "-h", "-o", "%i")
    expect(hidden_from_plain_squeue.split).not_to include(id)
    expect(discover_as("mtmember")["specs"].keys).to eq([id])
  ensure
    cancel_jobs
    poll("mthidden to empty") { `squeue -h -p mthidden -a -o %i`.strip.empty? }
    system("scontrol", "delete", "PartitionName=mthidden")
  end

  it "never offers a requeued job's previous run: the seal binds the run" do
    # The second run waits 20 s before publishing again, so the first run's name is there to be refused.
    id = share_on(owner: "mtowner", sbatch_args: ["--requeue"], delay: '[ "${SLURM_RESTART_COUNT:-0}" = 0 ] || sleep 20')
    root = dataroot_for("mtmember")
    first = discover_as("mtmember", dataroot: root)
    expect(first["cards"]["created"].size).to eq(1)
    sealed = name_on(id, nil)
    system("scontrol", "requeue", id, exception: true)
    # Slurm holds a requeued job back for its credential lifetime (120 s): root lets it start now.
    poll("job #{id} to be pending again") { `squeue -h -j #{id} -O StateCompact:`.strip == "PD" }
    system("scontrol", "update", "JobId=#{id}", "StartTime=now", exception: true)
    poll("job #{id} to run again", timeout: 60) do
      `squeue -h -j #{id} -O RestartCnt:6,StateCompact:6`.split == %w[1 R]
    end
    expect(name_on(id, nil)).to eq(sealed)
    again = discover_as("mtmember", dataroot: root)
    expect(again["specs"]).to eq({})
    # The previous run's name is not shared yet, and not a problem to log at every dashboard start.
    expect(again["errors"]).to eq([])
    expect(again["cards"]["removed"].size).to eq(1)
    # The new run publishes its own name: shared again, for this run.
    poll("the new run to publish", timeout: 60) { name_on(id, nil) != sealed }
    back = discover_as("mtmember", dataroot: root)
    expect([back["errors"], back["specs"].keys, back["cards"]["created"].size]).to eq([[], [id], 1])
  end

  it "cannot be flooded: names of groups nobody here is in hide nothing, and one owner's many shares are capped" do
    70.times do |i|
      fake = "mt|bogus#{i}|2.#{Base64.urlsafe_encode64(SecureRandom.bytes(90), padding: false)}"
      out, err, = run_as("mtowner", "sbatch", "--parsable", "--wckey=multitenant", "-J", fake, "-o", "/dev/null", "--wrap", "sleep 900")
      raise "sbatch failed: #{err}" unless out.strip.match?(/\A\d+\z/)

      (@jobs ||= []) << out.strip
    end
    ids = Array.new(12) { |i| share_on(owner: "mtowner", app: "Service_#{i}", wait: false) }
    ids.each { |id| poll("job #{id} to publish", timeout: 60) { job_name(id).include?("|") } }
    root = dataroot_for("mtmember")
    result = discover_as("mtmember", dataroot: root)
    expect(result["specs"].keys).to match_array(ids)
    expect(result["cards"]["created"].size).to eq(10)
    expect(result["cards"]["held_back"].size).to eq(2)
    expect(result["errors"].grep(/bogus/)).to eq([])
    expect(result["errors"].grep(/held back/).size).to eq(1)
    expect(Dir[File.join(root, "batch_connect/db/*")].size).to eq(10)
  end
end
