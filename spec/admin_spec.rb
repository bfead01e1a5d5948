# frozen_string_literal: true

require "yaml"

# The admin tasks (admin.rake) on the real test cluster, against an OOD tree in a temp dir.
RSpec.describe "admin.rake", :cluster do
  before { require_cluster! }
  after { cancel_jobs }

  around do |example|
    Dir.mktmpdir("ood") do |dir|
      @ood = dir
      FileUtils.mkdir_p(File.join(dir, "etc/config/clusters.d"))
      File.write(File.join(dir, "etc/config/clusters.d/hpc.yml"), { "v2" => { "metadata" => { "title" => "HPC" },
                                                                             "job" => { "adapter" => "slurm", "cluster" => "mtcluster" } } }.to_yaml)
      File.write(File.join(dir, "etc/config/clusters.d/k8s.yml"), { "v2" => { "job" => { "adapter" => "kubernetes" } } }.to_yaml)
      FileUtils.mkdir_p(File.join(dir, "etc/config/apps/dashboard"))
      File.write(File.join(dir, "etc/config/apps/dashboard/env"), "OOD_BC_CARD_TIME=1\n")
      example.run
    end
  end

  def rake(*args, env: {})
    env = { "OOD_ETC" => File.join(@ood, "etc"), "OOD_APPS" => File.join(@ood, "apps"), "MULTITENANT_KEY_DIR" => key_dir }.merge(env)
    out, err, status = Open3.capture3(env, "rake", "-f", File.join(ROOT, "admin.rake"), *args)
    [out, err, status.exitstatus]
  end

  it "doctor names each problem with its fix; install (dry run, then APPLY=1) fixes them; doctor then passes" do
    out, err, code = rake("doctor")
    expect(code).to eq(1)
    expect(err).to eq("4 problem(s)\n")
    expect(out).to include("ok       Slurm enforces WCKeys", "ok       jobs are visible to all users",
                           "ok       users who may publish (--wckey=multitenant): mtdefault, mtowner", "ok       keys: group mtclass: 1 key(s), root:mtclass 0440")
    expect(out.lines.grep(/PROBLEM/).map { |l| l[/PROBLEM  (OOD: [^:]+)/, 1] }).to eq(
      ["OOD: no initializer at #{@ood}/etc/config/apps/dashboard/initializers/multitenant.rb", "OOD: #{@ood}/etc/config/apps/dashboard/env has no MULTITENANT_LIB naming the gem's lib directory",
       "OOD: apps missing from #{@ood}/apps", "OOD: MULTITENANT_CLUSTERS is not set"]
    )
    expect(out.lines.grep(/PROBLEM/)).to all(include("install APPLY=1"))

    before = Dir.glob("#{@ood}/**/*").sort
    out, = rake("install")
    expect(out.lines.last).to eq("dry run: nothing was changed; run again with APPLY=1\n")
    expect(out).to include("would create #{@ood}/etc/config/clusters.d/hpc-multitenant.yml", "would update #{@ood}/etc/config/apps/dashboard/env")
    expect(Dir.glob("#{@ood}/**/*").sort).to eq(before)

    out, = rake("install", env: { "APPLY" => "1" })
    expect(out).to include("created #{@ood}/apps/multitenant-delivery_default/view.html.erb", "updated #{@ood}/etc/config/apps/dashboard/env")
    expect(rake("install", env: { "APPLY" => "1" }).first).to eq("everything is installed and up to date\n")
    env = File.read(File.join(@ood, "etc/config/apps/dashboard/env"))
    expect(env).to start_with("OOD_BC_CARD_TIME=1\n")
    expect(env).to include("MULTITENANT_LIB=#{File.join(ROOT, "lib")}\n", "MULTITENANT_CLUSTERS=mtcluster=hpc-multitenant\n")
    dismiss = YAML.safe_load(File.read(File.join(@ood, "etc/config/clusters.d/hpc-multitenant.yml")))["v2"]
    expect(dismiss["metadata"]).to include("hidden" => true)
    expect(dismiss["job"]).to include("adapter" => "slurm", "cluster" => "mtcluster")
    expect(File.exist?(File.join(@ood, "etc/config/clusters.d/k8s-multitenant.yml"))).to be(false)

    out, err, code = rake("doctor")
    expect([code, err, out.lines.grep(/PROBLEM/)]).to eq([0, "", []])
    expect(out).to include("ok       OOD: cards use hpc-multitenant, whose Delete only dismisses")
  end

  it "the dismiss entry's scancel cancels nothing, even for root who could cancel anything" do
    id = submit_share(owner: "mtowner", args: ["--set", "host=n1"])
    rake("install", env: { "APPLY" => "1" })
    scancel = YAML.safe_load(File.read(File.join(@ood, "etc/config/clusters.d/hpc-multitenant.yml"))).dig("v2", "job", "bin_overrides", "scancel")
    _, status = Open3.capture2e(scancel, id)
    expect(status).to be_success
    sleep 1
    expect(running?(id)).to be(true)
  end

  it "lists the shared jobs, decodes one, and says what cannot be opened here" do
    id = submit_share(owner: "mtowner", args: ["--set", "ollama_url=http://n1:4000"])
    plain, = run_as("mtowner", "sbatch", "--parsable", "--wckey=multitenant", "-J", "starting", "-o", "/dev/null", "--wrap", "sleep 600")
    (@jobs ||= []) << plain.strip
    poll("job listed") { rake("list").first.include?(plain.strip) }
    lines = rake("list").first.lines.map(&:split)
    expect(lines.first).to eq(%w[JOB OWNER GROUP APP FORMAT SIZE OPENS-HERE])
    expect(lines).to include([id, "mtowner", "mtclass", "Ollama_API", "1", job_name(id).size.to_s, "yes"])
    expect(lines).to include([plain.strip, "mtowner", "-", "-", "-", "8", "not", "shared", "yet"])
    out, = rake("decode", env: { "JOB" => id })
    expect(out).to include("job #{id} of mtowner: group mtclass, format 1", %(ollama_url = "http://n1:4000"))
    _, err, code = rake("decode", env: { "JOB" => "999999" })
    expect([code, err]).to eq([1, "multitenant: no running job 999999 with --wckey=multitenant\n"])
  end

  it "keygen writes a key with the right owner and mode, and refuses to overwrite it" do
    dir = File.join(@ood, "keys")
    out, _, code = rake("keygen", env: { "MULTITENANT_KEY_DIR" => dir, "GROUP" => "mtclass" })
    expect([code, out]).to eq([0, "wrote #{dir}/mtclass.key\n"])
    stat = File.stat(File.join(dir, "mtclass.key"))
    expect([stat.uid, Etc.getgrgid(stat.gid).name, stat.mode & 0o777]).to eq([0, "mtclass", 0o440])
    _, err, code = rake("keygen", env: { "MULTITENANT_KEY_DIR" => dir, "GROUP" => "mtclass" })
    expect([code, err]).to eq([1, "multitenant: #{dir}/mtclass.key: already exists: to add a new key and keep the old ones, use --rotate\n"])
  end

  it "installs twice under LANG=C" do
    rake("install", env: { "APPLY" => "1", "LANG" => "C", "LC_ALL" => "C" })
    out, err, code = rake("install", env: { "APPLY" => "1", "LANG" => "C", "LC_ALL" => "C" })
    expect([code, err, out]).to eq([0, "", "everything is installed and up to date\n"])
  end

  it "purge acts as the user: a data root that leads into root's files is refused and left alone" do
    victim = File.join(@ood, "root-owned")
    FileUtils.mkdir_p(File.join(victim, "batch_connect/db"))
    File.write(File.join(victim, "batch_connect/db/precious"), "x")
    home = File.join(lab, "home/mtmember")
    FileUtils.mkdir_p(home)
    FileUtils.chown("mtmember", nil, home)
    File.symlink(victim, File.join(home, "dr"))
    _, err, code = rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => File.join(home, "dr") })
    expect(code).to eq(1)
    expect(err).to match(%r{^problem: data root #{home}/dr(: Permission denied| is not a directory owned by uid)})
    expect(Dir.children(victim)).to eq(["batch_connect"])
    expect(File.read(File.join(victim, "batch_connect/db/precious"))).to eq("x")
  end

  it "purge keeps its record when another discovery holds the card lock" do
    submit_share(owner: "mtowner", args: ["--set", "host=n1"])
    root = dataroot_for("mtmember")
    discover_as("mtmember", dataroot: root)
    lock = File.open(File.join(root, "multitenant/.lock"))
    lock.flock(File::LOCK_EX)
    _, err, code = rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => root })
    expect(code).to eq(1)
    expect(err).to include("another discovery of this user holds the card lock")
    expect(File.exist?(File.join(root, "multitenant/cards.json"))).to be(true)
    lock.close
    expect(rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => root })[2]).to eq(0)
  end

  it "purge removes every card the gem wrote for a user, and nothing else" do
    submit_share(owner: "mtowner", args: ["--set", "host=n1"])
    root = dataroot_for("mtmember")
    discover_as("mtmember", dataroot: root)
    own = File.join(root, "batch_connect/db/my-own-session")
    File.write(own, "{}")
    expect(Dir[File.join(root, "batch_connect/db/*")].size).to eq(2)
    out, _, code = rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => root })
    expect([code, out]).to eq([0, "removed 1 card(s) of mtmember from #{root}\n"])
    expect(Dir[File.join(root, "batch_connect/db/*")]).to eq([own])
    expect(Dir.exist?(File.join(root, "multitenant"))).to be(false)
  end
end
