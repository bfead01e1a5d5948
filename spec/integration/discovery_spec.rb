# frozen_string_literal: true

require "yaml"
require "digest"

# MultiTenant.discover on the real test cluster, run as real users.
RSpec.describe "discovery on a real Slurm cluster", :cluster do
  before { require_cluster! }
  after { cancel_jobs }

  # A share's host must be a node of its job: the test cluster's one node.
  let(:node) { node_of("mtcluster") }
  let(:conn) { ["--set", "host=#{node}", "--set", "ollama_url=http://#{node}:4000", "--set", "note=<script>alert(1)</script> 'q' \"d\" |"] }

  def card_files(dataroot)
    Dir.glob("#{dataroot}/**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }.reject { |f| f.include?("/multitenant/") }
  end

  it "gives a member the specs and a card OOD can read, the same with both strategies" do
    id = submit_share(owner: "mtowner", args: conn)
    root = dataroot_for("mtmember")
    result = discover_as("mtmember", dataroot: root)
    expect(result["errors"]).to eq([])
    spec = result["specs"].fetch(id)
    expect(spec["accounting"]).to include("mta" => "Ollama_API", "mtm" => "card", "mtd" => "sys/multitenant-delivery_default", "mtu" => "")
    expect(spec["connection"]).to include("ollama_url" => "http://#{node}:4000", "jobid" => id, "mt_appname" => "Ollama_API",
                                          "note" => "<script>alert(1)</script> 'q' \"d\" |")
    expect(spec["info"]).to include("user" => "mtowner", "cluster" => "mtcluster", "ood_cluster" => "ood_mt", "group" => "mtclass")
    expect(discover_as("mtmember", strategy: "sacct", dataroot: root)["specs"]).to eq(result["specs"])

    card_id = spec["info"]["card_id"]
    db_path = File.join(root, "batch_connect/db", card_id)
    # Only what a dashboard uses is kept per share: the paths are the card id's, in OOD's layout.
    expect(spec["info"].keys.sort).to eq(%w[app card_id cluster expires_at group key_id ood_cluster user version])
    db = JSON.parse(File.read(db_path))
    expect(db.keys.sort).to eq(%w[cache_completed cluster_id completed_at created_at id job_id script_type title token])
    expect(db).to include("id" => card_id, "cluster_id" => "ood_mt", "job_id" => id, "token" => "sys/multitenant-delivery_default",
                          "title" => "mtowner: Ollama_API", "script_type" => "basic")
    expect(db["created_at"]).to be_a(Integer)
    conn_path = File.join(root, "batch_connect/sys/multitenant-delivery_default/output", card_id, "connection.yml")
    yaml = YAML.safe_load(File.read(conn_path))
    expect(yaml).to be_a(Hash)
    expect(yaml.values).to all(be_a(String))
    expect(yaml).to include("ollama_url" => "http://#{node}:4000", "note" => "<script>alert(1)</script> 'q' \"d\" |")
    uid = Etc.getpwnam("mtmember").uid
    [db_path, conn_path].each do |f|
      expect(File.stat(f).mode & 0o777).to eq(0o600)
      expect(File.stat(f).uid).to eq(uid)
    end
    expect(Dir.children(File.dirname(db_path)).grep(/\.bak\z/)).to be_empty
  end

  it "gives an outsider nothing, and the outsider cannot read the group key" do
    id = submit_share(owner: "mtowner", args: conn)
    result = discover_as("mtoutsider")
    expect(result["specs"]).to eq({})
    expect(card_files(dataroot_for("mtoutsider"))).to be_empty
    _, err, status = run_as("mtoutsider", "cat", File.join(key_dir, "mtclass.key"))
    expect(status).not_to be_success
    expect(err).to include("Permission denied")
    expect(job_name(id)).to start_with("mt|mtclass|2.")
  end

  it "includes a user whose primary group is the group, and gives the owner specs but no card" do
    id = submit_share(owner: "mtowner", args: conn)
    expect(discover_as("mtprimary")["specs"].keys).to eq([id])
    expect(card_files(dataroot_for("mtprimary")).size).to eq(2)
    owner = discover_as("mtowner")
    expect(owner["specs"].keys).to eq([id])
    expect(card_files(dataroot_for("mtowner"))).to be_empty
  end

  it "removes the card on the next run when the member leaves the group, and when the job ends" do
    id = submit_share(owner: "mtowner", args: conn)
    root = dataroot_for("mtmember")
    discover_as("mtmember", dataroot: root)
    expect(card_files(root).size).to eq(2)
    begin
      system("gpasswd", "-d", "mtmember", "mtclass", out: File::NULL, exception: true)
      result = discover_as("mtmember", dataroot: root)
      expect(result["specs"]).to eq({})
      expect(result["cards"]["removed"].size).to eq(1)
      expect(card_files(root)).to be_empty
    ensure
      system("gpasswd", "-a", "mtmember", "mtclass", out: File::NULL, exception: true)
    end
    readded = discover_as("mtmember", dataroot: root)
    expect(readded["cards"]["created"].size).to eq(1), readded.inspect
    system("scancel", id, exception: true)
    poll("job #{id} to end") { !running?(id) }
    expect(discover_as("mtmember", dataroot: root)["specs"]).to eq({})
    expect(card_files(root)).to be_empty
  end

  it "keeps a card the member dismissed dismissed while the share lives" do
    id = submit_share(owner: "mtowner", args: conn)
    root = dataroot_for("mtmember")
    card = discover_as("mtmember", dataroot: root)["specs"][id]["info"]["card_id"]
    # OOD's Delete (with the no-op scancel cluster entry) removes the db file.
    run_as("mtmember", "rm", File.join(root, "batch_connect/db", card))
    expect(discover_as("mtmember", dataroot: root)["cards"]["dismissed"]).to eq([card])
    3.times { expect(discover_as("mtmember", dataroot: root)["cards"]["created"]).to eq([]) }
    expect(card_files(root)).to be_empty
    expect(discover_as("mtmember", dataroot: root)["specs"].keys).to eq([id])
  end

  it "leaves cards and dismissals alone when the scheduler cannot be asked" do
    a = submit_share(owner: "mtowner", args: conn, wait: false)
    b = submit_share(owner: "mtowner", app: "Other", args: conn, wait: false)
    wait_published(a, b)
    root = dataroot_for("mtmember")
    specs = discover_as("mtmember", dataroot: root)["specs"]
    run_as("mtmember", "rm", File.join(root, "batch_connect/db", specs[a]["info"]["card_id"]))
    discover_as("mtmember", dataroot: root)
    before = card_files(root).sort
    script = <<~RUBY
      require "multitenant"
      config = MultiTenant::Config.new(key_dir: #{key_dir.inspect}, bin_dir: "/nonexistent", clusters: { "mtcluster" => "ood_mt" },
                                       clusters_dir: #{clusters_dir.inspect})
      MultiTenant.discover(dataroot: #{root.inspect}, config: config)
      p MultiTenant.cards
    RUBY
    out, = run_as("mtmember", RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", script)
    expect(out).to eq("nil\n")
    expect(card_files(root).sort).to eq(before)
    again = discover_as("mtmember", dataroot: root)
    expect(again["cards"]["created"]).to eq([]), "the dismissed card must stay dismissed"
    expect(again["specs"].keys).to contain_exactly(a, b)
  end

  it "honours the allow-list and expiry" do
    allowed = submit_share(owner: "mtowner", args: conn + ["--allow", "mtprimary"], wait: false)
    expiring = submit_share(owner: "mtowner", args: conn + ["--expires-in", "1h"], wait: false)
    wait_published(allowed, expiring)
    expect(discover_as("mtmember")["specs"].keys).to eq([expiring])
    expect(discover_as("mtprimary")["specs"].keys).to contain_exactly(allowed, expiring)
    expect(discover_as("mtprimary", now: Time.now.to_i + 3601)["specs"].keys).to eq([allowed])
  end

  it "rejects a name moved to another job, a forged name, and a name with a newline that forges a record" do
    a = submit_share(owner: "mtowner", args: conn, wait: false)
    b = submit_share(owner: "mtowner", app: "Other", args: conn, wait: false)
    wait_published(a, b)
    name_a = job_name(a)
    run_as("mtowner", "scontrol", "update", "JobId=#{b}", "JobName=#{name_a}")
    poll("rename") { job_name(b) == name_a }
    result = discover_as("mtmember")
    expect(result["specs"].keys).to eq([a])
    expect(result["errors"]).to include(a_string_matching(/job #{b} \(mtowner\): seal does not verify/))

    forged = name_a.sub(/.{4}\z/) { |t| t.reverse == t ? t.tr("A-Za-z", "B-ZAb-za") : t.reverse }
    run_as("mtowner", "scontrol", "update", "JobId=#{b}", "JobName=#{forged}")
    poll("rename") { job_name(b) == forged }
    expect(discover_as("mtmember")["specs"].keys).to eq([a])

    # A job may not claim another job's id and owner by putting a newline and a fake record in its name.
    # The attacker's job needs no WCKey: the forged record claims it.
    system("scancel", a, exception: true)
    poll("job #{a} to end") { !running?(a) }
    c = plain_job("mtmember")
    injected = "x\n#{a}|mtowner|multitenant|mtcluster|#{name_a}"
    run_as("mtmember", "scontrol", "update", "JobId=#{c}", "JobName=#{injected}")
    poll("rename") { job_name(c).start_with?("x") }
    %w[squeue sacct].each { |s| expect(discover_as("mtprimary", strategy: s)["specs"]).to eq({}) }
  end

  it "ignores a job whose WCKey was only defaulted (*multitenant)" do
    id = submit_share(owner: "mtdefault", args: conn, wckey: nil)
    out, = Open3.capture2("squeue", "-h", "-j", id, "-O", "WCKey:")
    expect(out.strip).to eq("*multitenant")
    %w[squeue sacct].each { |s| expect(discover_as("mtmember", strategy: s)["specs"]).to eq({}) }
  end

  it "refuses a share whose host is not a node of its job, in one line, with both strategies; the node's name with a cluster domain is one" do
    away = submit_share(owner: "mtowner", app: "Elsewhere", args: ["--set", "host=node1", "--set", "port=22"], wait: false)
    fqdn = submit_share(owner: "mtowner", app: "Here", args: ["--set", "host=#{node.upcase}.cluster.example.edu"], wait: false)
    # The node's name and a domain the publisher controls: OOD's shell button would go there.
    evil = submit_share(owner: "mtowner", app: "Evil", args: ["--set", "host=#{node}.evil.example.com"], wait: false)
    plain = submit_share(owner: "mtowner", app: "No_host", args: ["--set", "url=https://lab.example.edu/"], wait: false)
    wait_published(away, fqdn, evil, plain)
    root = dataroot_for("mtmember")
    domains = "cluster.example.edu"
    %w[squeue sacct].each do |strategy|
      result = discover_as("mtmember", strategy: strategy, dataroot: root, env: { "MULTITENANT_HOST_DOMAINS" => domains })
      expect(result["specs"].keys).to contain_exactly(fqdn, plain)
      expect(result["errors"]).to contain_exactly(
        %(job #{away} (mtowner): host "node1" is not a node of job #{away} (Slurm: #{node})),
        %(job #{evil} (mtowner): host "#{node}.evil.example.com" is not a node of job #{evil} (Slurm: #{node}; domains: cluster.example.edu, from MULTITENANT_HOST_DOMAINS))
      )
    end
    expect(Dir[File.join(root, "batch_connect/db/*")].size).to eq(2)
    # Not set: the domains are /etc/resolv.conf's search and domain entries, and the refusal says so.
    next if File.read("/etc/resolv.conf").match?(/^(search|domain)\s.*\bcluster\.example\.edu\.?(\s|$)/i)

    result = discover_as("mtmember", dataroot: nil)
    expect(result["specs"].keys).to contain_exactly(plain)
    expect(result["errors"]).to include(
      a_string_matching(%r{\Ajob #{fqdn} \(mtowner\): host "#{Regexp.escape(node.upcase)}\.cluster\.example\.edu" is not a node of job #{fqdn} \(Slurm: #{Regexp.escape(node)}; (no domains in|domains: .+, from) /etc/resolv\.conf; set MULTITENANT_HOST_DOMAINS\)\z})
    )
  end

  it "reads a legacy name only when legacy decoding is enabled" do
    id = legacy_share
    off = discover_as("mtmember")
    expect(off["specs"]).to eq({})
    # Not read by default: information, once, naming the setting; not a problem at every start.
    expect(off["errors"]).to eq([])
    expect(off["notes"]).to eq(["1 running job(s) publish in the first implementation's format, which is not read here " \
                                "(mtowner: 1); MULTITENANT_LEGACY=true reads it while a site migrates"])
    on = discover_as("mtmember", legacy: true)
    expect(on["specs"].dig(id, "accounting", "mta")).to eq("Legacy_API")
  end

  it "leaves the user's own OOD session files untouched after many runs" do
    root = dataroot_for("mtmember")
    own_db = File.join(root, "batch_connect/db/11111111-2222-4333-8444-555555555555")
    own_out = File.join(root, "batch_connect/sys/jupyter/output/11111111-2222-4333-8444-555555555555/connection.yml")
    [own_db, own_out].each do |f|
      FileUtils.mkdir_p(File.dirname(f))
      File.write(f, "{\"own\": \"#{f}\"}")
    end
    pw = Etc.getpwnam("mtmember")
    FileUtils.chown_R(pw.uid, pw.gid, root)
    before = [own_db, own_out].to_h { |f| [f, [Digest::SHA256.file(f).hexdigest, File.mtime(f)]] }
    id = submit_share(owner: "mtowner", args: conn)
    10.times { discover_as("mtmember", dataroot: root) }
    system("scancel", id, exception: true)
    poll("job #{id} to end") { !running?(id) }
    discover_as("mtmember", dataroot: root)
    after = [own_db, own_out].to_h { |f| [f, [Digest::SHA256.file(f).hexdigest, File.mtime(f)]] }
    expect(after).to eq(before)
    expect(card_files(root).sort).to eq([own_db, own_out].sort)
  end

  it "returns what it could and one reason when the scheduler fails, and the strict variant raises" do
    result = discover_as("mtmember", strategy: "sacct", dataroot: dataroot_for("mtmember"))
    expect(result["errors"]).to eq([])
    script = <<~RUBY
      require "multitenant"
      config = MultiTenant::Config.new(key_dir: #{key_dir.inspect}, bin_dir: "/nonexistent")
      p MultiTenant.discover(config: config), MultiTenant.errors
      begin
        MultiTenant.discover!(config: config)
      rescue MultiTenant::Error => e
        puts e.class
      end
    RUBY
    out, err, status = run_as("mtmember", RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", script)
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(["{}", %(["squeue: cannot run /nonexistent/squeue: No such file or directory (os error 2) (is Slurm's client installed, and job.bin right?)"]), "MultiTenant::Error"])
    expect(err.lines.size).to eq(1)
  end
end
