# frozen_string_literal: true

require "yaml"
require "digest"
require "securerandom"

# Faults at a dashboard start (issue 10), on the real test cluster as real users. For each fault: the
# dashboard start is unaffected (MultiTenant.discover returns, never raises, within its time bound), no
# file is lost or half-written (every card file and the manifest parse before and after, the user's own
# session files are untouched, no temp file stays), and there is ONE clear reason in MultiTenant.errors
# and the log. Every dashboard start here is a fresh Ruby process as the member, configured only from
# the environment, as the dashboard's `env` file configures it.
#
# The table, fault by fault (the examples below are named after the rows):
#
#   1. Slurm commands
#      missing, MULTITENANT_SLURM_BIN      proven by spec/integration/discovery_spec.rb "leaves cards and
#                                          dismissals alone when the scheduler cannot be asked" (cards and
#                                          dismissals kept) and "returns what it could and one reason when
#                                          the scheduler fails, …" (one reason, one log line, discover! raises)
#      missing, a clusters.d `bin`         "1 missing: a clusters.d job.bin without squeue"
#      failing                             "1 failing: squeue exits 1 with a message"
#      hanging                             "1 hanging: …" (squeue that sleeps; squeue whose child keeps stdout
#                                          open; every command hanging with strategy sacct): the
#                                          MULTITENANT_TIMEOUT bound holds, the process group is gone
#   2. slurmdbd down, strategy sacct       "2 slurmdbd down …"
#   3. slurmctld restarting mid-query      "3 slurmctld restarting …"
#   4. data root unwritable                "4 unwritable: …" (batch_connect/db 0555; the manifest's directory
#                                          0555; the data root owned by root)
#   5. disk full                           "5 disk full: …" (no room for a card; room for the card but not
#                                          the manifest), then space freed: the next discovery repairs
#   6. two discovers for one user at once  "6 two discovers at once …"
#   7. a key file with the wrong mode      "7 key file mode: …" (group-writable; world-readable)
#   8. killed mid-reconcile (SIGKILL)      "8 killed at …" (strace injects SIGKILL at each rename of a run
#                                          that writes a card), then the next discovery repairs
#   (the user's Slurm variables, hidden partitions, requeues, floods: spec/integration/real_sites_spec.rb)
RSpec.describe "faults at a dashboard start", :cluster do
  # MULTITENANT_TIMEOUT in every row, and what a start may take beyond it (a fresh Ruby loading the
  # extension is not counted: the time is taken around MultiTenant.discover).
  FAULTS_TIMEOUT = 2
  FAULTS_SLACK = 1.5
  FAULTS_OWN_ID = "11111111-2222-4333-8444-555555555555"
  FAULTS_LOCK_REASON = "another discovery of this user holds the card lock; cards left as they are this time"

  # A dashboard start: MultiTenant.discover in a fresh Ruby as the user, timed; anything it raises is
  # caught and reported (it must raise nothing). MT_READY/MT_GO let several start together.
  FAULTS_START = <<~RUBY
    require "multitenant"; require "json"
    File.write(ENV["MT_READY"], "") if ENV["MT_READY"]
    sleep 0.001 until File.exist?(ENV["MT_GO"]) if ENV["MT_GO"]
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    begin
      specs = MultiTenant.discover(dataroot: ENV["MT_DATAROOT"])
    rescue Exception => e # rubocop:disable Lint/RescueException
      raised = "\#{e.class}: \#{e.message}"
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
    $stdout.puts JSON.generate("specs" => specs, "errors" => MultiTenant.errors, "cards" => MultiTenant.cards,
                               "elapsed" => elapsed, "raised" => raised)
  RUBY

  before(:all) do
    require_cluster!
    @node = node_of("mtcluster")
    @a = submit_share(owner: "mtowner", args: conn, wait: false)
    @b = submit_share(owner: "mtowner", app: "Other", args: conn, wait: false)
    wait_published(@a, @b)
    @base = File.join(lab, "faults")
    FileUtils.mkdir_p(@base)
    File.chmod(0o755, @base)
  end

  after(:all) do
    cancel_jobs
    FileUtils.rm_rf(@base) if @base
  end

  # Whatever a row stopped, the cluster is whole again for the specs after it.
  after { healthy_cluster! }

  def conn = ["--set", "host=#{@node}", "--set", "ollama_url=http://#{@node}:4000"]
  def shares = [@a, @b]

  # ------------------------------------------------------------------ helpers

  def healthy_cluster!
    ok = ->(*cmd) { Open3.capture2e(*cmd).last.success? }
    return if ok.("sinfo", "-h") && ok.("sacctmgr", "-n", "show", "cluster") && ok.(ClusterHelpers::SCRIPT, "status")

    out, status = Open3.capture2e(ClusterHelpers::SCRIPT, "up")
    raise "testcluster up failed:\n#{out}" unless status.success?

    poll("sinfo and sacct to answer", timeout: 60) { ok.("sinfo", "-h") && ok.("sacct", "-n", "-X", "-a") }
  end

  # A fresh directory of this example under the lab (world-traversable).
  def scratch(name)
    dir = File.join(@base, "#{name}-#{SecureRandom.hex(3)}")
    FileUtils.mkdir_p(dir)
    File.chmod(0o755, dir)
    dir
  end

  # A data root of the member's, as OOD has it, below `parent`, holding the user's own session (a db
  # file and its output): discovery must never touch those.
  def member_root(parent = scratch("home"))
    home = File.join(parent, "mtmember")
    root = File.join(home, "ondemand/data/sys/dashboard")
    [File.join(root, "batch_connect/db", FAULTS_OWN_ID), File.join(root, "batch_connect/sys/jupyter/output", FAULTS_OWN_ID, "connection.yml")].each do |f|
      FileUtils.mkdir_p(File.dirname(f))
      File.write(f, f.end_with?(".yml") ? "host: own\n" : JSON.generate("id" => FAULTS_OWN_ID, "own" => true))
    end
    pw = Etc.getpwnam("mtmember")
    FileUtils.chown_R(pw.uid, pw.gid, home)
    File.chmod(0o700, home)
    root
  end

  # The environment of a dashboard whose env file says these settings.
  def settings(root, **more)
    { "MULTITENANT_KEY_DIR" => key_dir, "MULTITENANT_TIMEOUT" => FAULTS_TIMEOUT.to_s, "MULTITENANT_CLUSTERS" => "mtcluster=ood_mt",
      "OOD_CLUSTERS" => clusters_dir, "MT_DATAROOT" => root.to_s }.merge(more.transform_keys(&:to_s))
  end

  def start_command(env)
    vars = { "PATH" => "/usr/local/bin:/usr/bin:/bin" }.merge(env).map { |k, v| "#{k}=#{v}" }
    ["runuser", "-u", "mtmember", "--", "env", "-i", *vars, RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", FAULTS_START]
  end

  # One dashboard start; returns its result with "log" (the lines it logged) and "status".
  def start(root, **more)
    out, err, status = Open3.capture3(*start_command(settings(root, **more)), chdir: lab)
    parse_start(out, err, status)
  end

  def parse_start(out, err, status)
    raise "the dashboard start died (#{status.inspect}): #{err}" unless status.success? && out.lines.last

    JSON.parse(out.lines.last).merge("log" => err.lines.map(&:chomp).grep(/multitenant: /), "status" => status)
  end

  # A start that sets up the member's cards: one card for the first share only (MULTITENANT_MAX_CARDS=1),
  # so the second one's card is still to be written, as by a share published since.
  def with_one_card(root)
    r = start(root, MULTITENANT_MAX_CARDS: 1)
    expect([r["raised"], r["cards"]["created"].size, r["cards"]["held_back"].size]).to eq([nil, 1, 1]), r.inspect
    expect(manifest_of(root)["cards"].values.map { |e| e["job_id"] }).to eq([@a])
    r
  end

  # Every file below the root, dot files included.
  def files(root) = Dir.glob("#{root}/**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }.sort
  def snapshot(root) = files(root).to_h { |f| [f, Digest::SHA256.file(f).hexdigest] }

  def manifest_of(root)
    path = File.join(root, "multitenant/cards.json")
    File.exist?(path) ? JSON.parse(File.read(path)) : { "cards" => {} }
  end

  # The card ids the manifest records, not dismissed.
  def card_ids(root) = manifest_of(root)["cards"].reject { |_, e| e["dismissed"] }.keys.sort

  # Every file parses as what OOD or discovery reads it as; no temp file is left; the manifest and the
  # files agree (each recorded card has its two files, each file of ours is recorded, no id twice); the
  # user's own session is untouched.
  def expect_consistent(root)
    all = files(root)
    expect(all.map { |f| File.basename(f) }.grep(/\A\..*\.bak\z/)).to eq([]), "temp files left: #{all.grep(/\.bak\z/)}"
    raw = File.exist?(File.join(root, "multitenant/cards.json")) ? File.read(File.join(root, "multitenant/cards.json")) : "{}"
    m = manifest_of(root)
    m["cards"].each_key { |id| expect(raw.scan(/"#{id}":/).size).to eq(1), "card #{id} recorded twice" }
    all.each do |f|
      case f
      when %r{/batch_connect/db/[^/]+\z} then expect(JSON.parse(File.read(f))).to be_a(Hash)
      when %r{/connection\.yml\z} then expect(YAML.safe_load(File.read(f))).to be_a(Hash)
      end
    end
    # A pending card (recorded before its files are written) may lack them; a stale output is ours too.
    live = m["cards"].reject { |_, e| e["dismissed"] }
    card_files = ->(e) { [File.join(root, e["db"]), File.join(root, e["output"], "connection.yml")] }
    ours = live.flat_map { |_, e| card_files.(e) + (e["stale"] ? [File.join(root, e["stale"], "connection.yml")] : []) }
    expect(live.reject { |_, e| e["pending"] }.flat_map { |_, e| card_files.(e) } - all).to eq([]), "recorded card files missing"
    own = [File.join(root, "batch_connect/db", FAULTS_OWN_ID), File.join(root, "batch_connect/sys/jupyter/output", FAULTS_OWN_ID, "connection.yml")]
    expect(all - ours - own - [File.join(root, "multitenant/cards.json"), File.join(root, "multitenant/.lock")]).to eq([]),
                                                                                                                      "files nobody records"
    expect(File.read(own[0])).to eq(JSON.generate("id" => FAULTS_OWN_ID, "own" => true))
    expect(File.read(own[1])).to eq("host: own\n")
  end

  # The start was unaffected and said one thing: returned (nothing raised) within the bound, exactly one
  # reason matching `reason` in MultiTenant.errors, and that one line in the log.
  def expect_one_reason(result, reason, bound: FAULTS_TIMEOUT)
    expect(result["raised"]).to be_nil
    expect(result["elapsed"]).to be < bound + FAULTS_SLACK
    expect(result["errors"].size).to eq(1), "one reason, not: #{result["errors"].inspect}"
    expect(result["errors"].first).to match(reason)
    expect(result["log"].size).to eq(1), "one log line, not: #{result["log"].inspect}"
    expect(result["log"].first).to end_with(result["errors"].first)
  end

  def expect_full_answer(result, root = nil)
    expect([result["raised"], result["errors"], result["specs"].keys.sort]).to eq([nil, [], shares.sort]), result.inspect
    expect(card_ids(root).size).to eq(2) if root
  end

  # A directory of fake Slurm commands (`name => sh body`), for the member.
  def fake_bin(commands)
    dir = scratch("bin")
    commands.each do |name, body|
      File.write(File.join(dir, name), "#!/bin/sh\n#{body}\n")
      File.chmod(0o755, File.join(dir, name))
    end
    dir
  end

  # The live (not zombie) processes in process group `pgid`.
  def live_in_group(pgid)
    Dir.glob("/proc/[0-9]*/stat").filter_map do |f|
      fields = File.read(f).split(") ", 2).last.to_s.split
      f if fields[2].to_i == pgid && fields[0] != "Z"
    rescue SystemCallError
      nil
    end
  end

  def alive?(pidfile)
    pid = File.read(pidfile).to_i
    pid.positive? && File.exist?("/proc/#{pid}") && !File.read("/proc/#{pid}/stat").split(") ", 2).last.start_with?("Z")
  rescue SystemCallError
    false
  end

  # Stops a daemon of the test cluster by its pid file, as `testcluster down` does, and waits until it is gone.
  def stop_daemon(pidfile)
    pid = File.read(pidfile).to_i
    Process.kill("TERM", pid)
    poll("#{pidfile} to stop", timeout: 60) { !alive?(pidfile) }
  end

  # ------------------------------------------------------------------ 1. Slurm commands

  it "1 missing: a clusters.d job.bin without squeue: one reason, cards and manifest as they were" do
    root = member_root
    with_one_card(root)
    before = snapshot(root)
    empty = fake_bin({})
    clusters = scratch("clusters.d")
    doc = { "v2" => { "metadata" => { "title" => "ood_mt", "hidden" => true }, "job" => { "adapter" => "slurm", "bin" => empty } } }
    File.write(File.join(clusters, "ood_mt.yml"), YAML.dump(doc))
    r = start(root, OOD_CLUSTERS: clusters)
    expect_one_reason(r, "cluster mtcluster: squeue: cannot run #{empty}/squeue: No such file or directory (os error 2) " \
                         "(is Slurm's client installed, and job.bin right?)")
    expect(r["cards"]).to be_nil
    expect(snapshot(root)).to eq(before)
    expect_consistent(root)
  end

  it "1 failing: squeue exits 1 with a message: that message is the reason, cards and manifest as they were" do
    root = member_root
    with_one_card(root)
    before = snapshot(root)
    bin = fake_bin("squeue" => "echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2; exit 1")
    r = start(root, MULTITENANT_SLURM_BIN: bin)
    expect_one_reason(r, "cluster mtcluster: squeue: slurm_load_jobs error: Unable to contact slurm controller (connect failure)")
    expect(snapshot(root)).to eq(before)
    expect_consistent(root)
  end

  [
    ["a squeue that sleeps forever", "squeue", { "squeue" => "echo $$ >> \"$MT_PIDS\"; exec sleep 100000" }],
    ["a squeue whose child keeps its stdout open", "squeue", { "squeue" => "echo $$ >> \"$MT_PIDS\"; sleep 100000 & echo partial; exit 0" }],
    # sacctmgr is asked first (slurmdbd's PrivateData), then sacct: the bound is still one timeout.
    ["every command hanging, strategy sacct", "sacct",
     %w[sacctmgr sacct squeue].to_h { |c| [c, "echo $$ >> \"$MT_PIDS\"; exec sleep 100000"] }]
  ].each do |what, strategy, commands|
    it "1 hanging: #{what}: returns within MULTITENANT_TIMEOUT, with one reason, and no process is left behind" do
      root = member_root
      with_one_card(root)
      before = snapshot(root)
      bin = fake_bin(commands)
      pids = File.join(bin, "pids")
      File.write(pids, "")
      File.chmod(0o666, pids)
      r = start(root, MULTITENANT_SLURM_BIN: bin, MULTITENANT_STRATEGY: strategy, MT_PIDS: pids)
      # With sacct, slurmdbd's PrivateData check is what hangs first; then nothing else is asked.
      program = strategy == "sacct" ? "sacctmgr" : "squeue"
      expect_one_reason(r, "cluster mtcluster: #{program}: no answer within #{FAULTS_TIMEOUT} s")
      groups = File.read(pids).split.map(&:to_i)
      expect(groups).not_to be_empty
      groups.each { |g| poll("process group #{g} to be gone", timeout: 5) { live_in_group(g).empty? } }
      expect(snapshot(root)).to eq(before)
      expect_consistent(root)
    end
  end

  # ------------------------------------------------------------------ 2. slurmdbd down

  it "2 slurmdbd down, strategy sacct: one reason within the bound, cards kept; with slurmdbd back, the full answer" do
    root = member_root
    poll("both shares in accounting") { shares.all? { |id| in_accounting?(id) } }
    expect_full_answer(start(root, MULTITENANT_STRATEGY: "sacct"), root)
    before = snapshot(root)
    begin
      stop_daemon("/run/slurm/slurmdbd.pid")
      r = start(root, MULTITENANT_STRATEGY: "sacct")
      expect_one_reason(r, /\Acluster mtcluster: sacct: .*(Problem talking to the database|slurm_persist_conn_open|Connection refused)/)
      expect(r["cards"]).to be_nil
      expect(snapshot(root)).to eq(before)
    ensure
      healthy_cluster!
    end
    expect_full_answer(start(root, MULTITENANT_STRATEGY: "sacct"), root)
    expect(snapshot(root)).to eq(before)
    expect_consistent(root)
  end

  # ------------------------------------------------------------------ 3. slurmctld restarting

  it "3 slurmctld restarting mid-query: every start returns the full answer or one reason, and no card goes" do
    root = member_root
    expect_full_answer(start(root), root)
    before = snapshot(root)
    results = Queue.new
    stop = false
    loop_thread = Thread.new do
      until stop
        r = start(root)
        results << [r, snapshot(root)]
      end
    end
    seen = []
    take = lambda do |what, &wanted|
      poll(what, timeout: 90) do
        r, snap = results.pop
        seen << [r, snap]
        wanted.call(r)
      end
    end
    begin
      take.call("a full answer before the restart") { |r| r["errors"].empty? }
      pid = File.read("/run/slurm/slurmctld.pid").to_i
      Process.kill("TERM", pid)
      take.call("a start that met the stopped controller") { |r| !r["errors"].empty? }
      poll("slurmctld to stop", timeout: 60) { !alive?("/run/slurm/slurmctld.pid") }
      healthy_cluster!
      take.call("a full answer after the restart") { |r| r["errors"].empty? }
    ensure
      stop = true
      loop_thread.join
      healthy_cluster!
    end
    expect(seen.size).to be >= 3
    seen.each do |r, snap|
      expect(r["raised"]).to be_nil
      expect(r["elapsed"]).to be < FAULTS_TIMEOUT + FAULTS_SLACK
      if r["errors"].empty?
        expect(r["specs"].keys.sort).to eq(shares.sort)
      else
        expect(r["errors"].size).to eq(1), r["errors"].inspect
        expect(r["errors"].first).to start_with("cluster mtcluster: squeue: ")
        expect(r["cards"]).to be_nil
      end
      expect(snap).to eq(before), "a card changed during the restart: #{r.inspect}"
    end
    expect_consistent(root)
  end

  # ------------------------------------------------------------------ 4. data root unwritable

  [
    ["batch_connect/db is 0555", "batch_connect/db",
     %r{\Acard [0-9a-f-]{36}: writing .*/batch_connect/db/[0-9a-f-]{36}: Permission denied\z}],
    # New cards are recorded (pending) before their files are written: nothing is written.
    ["the manifest's directory is 0555", "multitenant",
     %r{\Awriting .*/multitenant/cards\.json: Permission denied: no card written anew this run\z}]
  ].each do |what, dir, reason|
    it "4 unwritable: #{what}: one reason, nothing raised, nothing half-written; writable again, the next start repairs" do
      root = member_root
      with_one_card(root)
      before = snapshot(root)
      File.chmod(0o555, File.join(root, dir))
      r = start(root)
      expect_one_reason(r, reason)
      expect(snapshot(root)).to eq(before)
      expect_consistent(root)
      File.chmod(0o700, File.join(root, dir))
      expect_full_answer(start(root), root)
      expect_consistent(root)
    end
  end

  it "4 unwritable: the data root owned by root: one reason that says the fix, nothing touched" do
    root = member_root
    with_one_card(root)
    before = snapshot(root)
    File.chown(0, 0, root)
    File.chmod(0o755, root)
    r = start(root)
    expect_one_reason(r, "data root #{root} is not a directory owned by uid #{Etc.getpwnam("mtmember").uid} (you): " \
                         "it is owned by uid 0, not by you (uid #{Etc.getpwnam("mtmember").uid}); point OOD's data root at a directory of yours")
    expect(snapshot(root)).to eq(before)
    expect_consistent(root)
  end

  # ------------------------------------------------------------------ 5. disk full

  # A tmpfs of its own for the member's data root (`size` bytes), unmounted after.
  def on_small_filesystem(size)
    mnt = scratch("fs")
    system("mount", "-t", "tmpfs", "-o", "size=#{size},mode=0755", "tmpfs", mnt, exception: true)
    File.chmod(0o755, mnt)
    yield mnt
  ensure
    system("umount", mnt) || system("umount", "-l", mnt) if mnt
  end

  # Fills the filesystem at `mnt` (as root: tmpfs keeps nothing back for root), then frees `pages` pages.
  def fill(mnt, pages: 0)
    filler = File.join(mnt, "filler")
    File.open(filler, "wb") do |f|
      chunk = "\0" * 4096
      begin
        loop { f.syswrite(chunk) }
      rescue Errno::ENOSPC
        nil
      end
    end
    File.truncate(filler, [File.size(filler) - (pages * 4096), 0].max)
    filler
  end

  [
    # The new card is recorded (pending) first: no room for that record, nothing is written.
    ["no room for the card", 0,
     %r{\Awriting .*/multitenant/cards\.json: No space left on device( \(os error 28\))?: no card written anew this run\z}, :whole],
    # Two pages: the pending record and the card's two files fit, the final record does not. The card
    # stays recorded as pending (the next start takes it up); the old card is untouched.
    ["room for the card but not the manifest", 2,
     %r{\Awriting .*/multitenant/cards\.json: No space left on device( \(os error 28\))?; the cards written this run stay recorded as pending\z}, :pending]
  ].each do |what, pages, reason, after|
    it "5 disk full: #{what}: the old card and manifest survive whole, one reason; space freed, the next start repairs" do
      on_small_filesystem("1m") do |mnt|
        root = member_root(mnt)
        with_one_card(root)
        before = snapshot(root)
        filler = fill(mnt, pages: pages)
        r = start(root)
        expect_one_reason(r, reason)
        now = snapshot(root).except(filler)
        if after == :whole
          expect(now).to eq(before)
        else
          kept = before.reject { |f, _| f.end_with?("/cards.json") }
          expect(now.slice(*kept.keys)).to eq(kept)
          expect(manifest_of(root)["cards"].values.count { |e| e["pending"] }).to eq(1)
        end
        expect_consistent(root)
        File.unlink(filler)
        expect_full_answer(start(root), root)
        expect_consistent(root)
      end
    end
  end

  # ------------------------------------------------------------------ 6. two at once

  it "6 two discovers at once for one user, many times: both return, the cards and manifest agree, nothing twice" do
    10.times do |round|
      root = member_root
      signals = scratch("go")
      File.chmod(0o777, signals)
      go = File.join(signals, "go")
      runs = Array.new(2) do |i|
        ready = File.join(signals, "ready#{i}")
        env = settings(root, MT_READY: ready, MT_GO: go)
        stdin, out, err, wait = Open3.popen3(*start_command(env), chdir: lab)
        stdin.close
        [ready, out, err, wait]
      end
      poll("both starts to be ready") { runs.all? { |ready, *| File.exist?(ready) } }
      File.write(go, "")
      results = runs.map { |_, out, err, wait| parse_start(out.read, err.read, wait.value) }
      results.each do |r|
        expect(r["raised"]).to be_nil
        expect(r["elapsed"]).to be < FAULTS_TIMEOUT + FAULTS_SLACK
        expect(r["specs"].keys.sort).to eq(shares.sort)
        expect(r["errors"]).to eq([]).or(eq([FAULTS_LOCK_REASON])), "round #{round}: #{r["errors"].inspect}"
      end
      created = results.flat_map { |r| r["cards"]["created"] }
      expect(created.size).to eq(created.uniq.size), "round #{round}: a card created twice: #{created}"
      expect(card_ids(root).size).to eq(2), "round #{round}"
      expect(Dir.children(File.join(root, "batch_connect/db")).size).to eq(3), "round #{round}"
      expect_consistent(root)
    end
  end

  # ------------------------------------------------------------------ 7. key file mode

  [
    ["group-writable", 0o460, "is writable by group or others"],
    ["world-readable", 0o444, "is world-readable"]
  ].each do |what, mode, why|
    it "7 key file mode: #{what}: one reason naming the file and the fix; another group's share still delivered" do
      # A key dir of this example: the lab's mtclass key, and a site-wide key that seals a share for the
      # group `users` (mtowner's and mtmember's primary group), which has no key of its own.
      keys = scratch("keys")
      FileUtils.cp(File.join(key_dir, "mtclass.key"), keys, preserve: true)
      MultiTenant::KeyDir.new(keys).generate(site: true)
      other = submit_share(owner: "mtowner", group: "users", app: "Users_share",
                           args: conn + ["--key-dir", keys, "--allow-site-key"])
      begin
        root = member_root
        expect(start(root, MULTITENANT_KEY_DIR: keys)["specs"].keys.sort).to eq((shares + [other]).sort)
        before = snapshot(root)
        file = File.join(keys, "mtclass.key")
        File.chmod(mode, file)
        r = start(root, MULTITENANT_KEY_DIR: keys)
        expect_one_reason(r, "group mtclass: #{file}: #{why}: chmod 0440 #{file}")
        expect(r["specs"].keys).to eq([other])
        expect(snapshot(root)).to eq(before), "the mtclass cards must stay (their group's key is unknown, not gone)"
        expect(card_ids(root).size).to eq(3)
        expect_consistent(root)
      ensure
        system("scancel", other.to_s) if other
        @jobs.delete(other)
        poll("job #{other} to end") { !running?(other) } if other
      end
    end
  end

  # ------------------------------------------------------------------ 8. killed mid-reconcile

  # A start that writes one card (the second share's) renames three temp files into place: the card's
  # connection.yml, its session file, then the manifest. SIGKILL comes at each of those renames.
  {
    1 => "the card's connection.yml is renamed into place",
    2 => "the card's session file is renamed into place",
    3 => "the manifest is renamed into place"
  }.each do |n, point|
    it "8 killed at rename #{n}, as #{point}: the next start repairs everything (no temp file, manifest and cards agree)" do
      root = member_root
      with_one_card(root)
      cmd = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=renameat,renameat2,rename",
             "-e", "inject=renameat,renameat2,rename:signal=SIGKILL:when=#{n}", *start_command(settings(root))]
      out, err, status = Open3.capture3(*cmd, chdir: lab)
      expect(status.termsig || status.exitstatus).to eq(9).or(eq(137)), "not killed: #{status.inspect} #{out} #{err}"
      # What a kill may leave is never a half-written file OOD reads.
      files(root).reject { |f| File.basename(f).start_with?(".") }.each do |f|
        JSON.parse(File.read(f)) if f.match?(%r{/batch_connect/db/|/cards\.json\z})
        YAML.safe_load(File.read(f)) if f.end_with?("connection.yml")
      end
      r = start(root)
      expect_full_answer(r, root)
      expect_consistent(root)
    end
  end
end
