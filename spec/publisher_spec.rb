# frozen_string_literal: true

# The real mtshare binary, run as real users in a fake Slurm job environment.
RSpec.describe "mtshare" do
  before { require_root! }

  around do |example|
    shared_tmpdir do |dir|
      @tmp = dir
      @bin = File.join(dir, "mtshare")
      FileUtils.cp(MultiTenant.publisher_path, @bin)
      @key_dir = File.join(dir, "keys")
      @keys = MultiTenant::KeyDir.new(@key_dir)
      @keys.generate(group: "mtclass")
      example.run
    end
  end

  def job_env(user, job_id: "777", **extra)
    { "PATH" => "#{@tmp}/fakebin:/usr/bin:/bin", "SLURM_JOB_ID" => job_id, "SLURM_JOB_USER" => user,
      "SLURM_CLUSTER_NAME" => "mtcluster", "SLURM_JOB_NAME" => "ollama-service", "MULTITENANT_KEY_DIR" => @key_dir,
      **extra }
  end

  # Runs mtshare as `user` with exactly `env` (runuser keeps no other environment).
  def mtshare(user, *args, env: job_env(user), stdin: "")
    cmd = ["runuser", "-u", user, "--", "env", "-i", *env.map { |k, v| "#{k}=#{v}" }, @bin, *args]
    out, err, status = Open3.capture3(*cmd, stdin_data: stdin, chdir: @tmp)
    [out, err, status.exitstatus]
  end

  def open_name(name, owner, job_id = "777", cluster: "mtcluster", restarts: 0)
    MultiTenant::Envelope.open(name, keys: @keys.opening_keys("mtclass"), job_id: job_id, owner: owner, cluster: cluster,
                                     restarts: restarts)
  end

  it "has complete help with documented exit codes" do
    out, _, code = mtshare("mtoutsider", "--help")
    expect(code).to eq(0)
    expect(out).to include("publish", "unshare", "inspect", "keygen", "Exit codes:", "4  key problem")
    out, = mtshare("mtoutsider", "publish", "--help")
    expect(out).to include("--group", "--set", "--env", "--from-file", "--allow", "--expires-in", "--dry-run", "SLURM_JOB_ID",
                           "--cluster", "SLURM_CLUSTER_NAME", "--restarts", "SLURM_RESTART_COUNT")
  end

  it "publishes with --dry-run from flags, environment and a file, and Ruby opens the name" do
    File.write(File.join(@tmp, "conn.env"), "# db\ndb_password=p@ss w'rd|\"x\" ü\njdbc_url=jdbc:postgresql://n1:5432/db\n")
    env = job_env("mtowner", "OLLAMA_URL" => "http://node1:4000 ", "PORT_NUMBER" => "4000")
    out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "Ollama API", "--set", "host=node1",
                             "--env", "OLLAMA_URL", "--env", "port=PORT_NUMBER", "--from-file", "conn.env",
                             "--allow", "mtmember,mtprimary", "--expires-in", "2h", "--session-id", "abc-123", "--dry-run", env: env)
    expect([code, err]).to match([0, /dry run, job 777 not renamed: card share "Ollama API" for group mtclass \(5 connection values, 2 allowed users\), key \h{8} .*, for run 0 on cluster mtcluster: name is (\d+) of 1024 characters/])
    name = out.chomp
    expect(err[/name is (\d+) of/, 1].to_i).to eq(name.size)
    share = open_name(name, "mtowner")
    expect(share["message"]).to include(
      "session_id" => "abc-123", "app" => "Ollama API", "method" => "card", "allow" => %w[mtmember mtprimary],
      "connection" => { "host" => "node1", "ollama_url" => "http://node1:4000 ", "port" => "4000",
                        "db_password" => "p@ss w'rd|\"x\" ü", "jdbc_url" => "jdbc:postgresql://n1:5432/db" }
    )
    expect(share["message"]["expires_at"]).to be_within(5).of(Time.now.to_i + 7200)
    expect { open_name(name, "mtmember") }.to raise_error(MultiTenant::SealError)
  end

  it "binds the name to the job's cluster and run, from the job's environment" do
    env = job_env("mtowner", "SLURM_RESTART_COUNT" => "2")
    out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run", env: env)
    expect([code, err]).to match([0, /for run 2 on cluster mtcluster: name is/])
    name = out.chomp
    expect(name).to start_with("mt|mtclass|2.")
    expect(open_name(name, "mtowner", restarts: 2)["message"]["app"]).to eq("A")
    # After a requeue (or before it), and for the same job id on another cluster, it does not open.
    [{ restarts: 0 }, { restarts: 3 }, { cluster: "othercluster", restarts: 2 }].each do |run|
      expect { open_name(name, "mtowner", **run) }.to raise_error(MultiTenant::SealError), run.inspect
    end
  end

  it "refuses to publish without the cluster name unless given by flags" do
    env = job_env("mtowner").except("SLURM_CLUSTER_NAME")
    out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run", env: env)
    expect([out, code]).to eq(["", 3])
    expect(err).to eq("mtshare: SLURM_CLUSTER_NAME is not set: run mtshare inside the Slurm job, or give --cluster (and --restarts) explicitly\n")
    out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run", "--cluster", "c2",
                             "--restarts", "5", env: env)
    expect([code, err]).to match([0, /for run 5 on cluster c2:/])
    expect(open_name(out.chomp, "mtowner", cluster: "c2", restarts: 5)["group"]).to eq("mtclass")
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run", "--cluster", "a|b", env: env)
    expect([code, err]).to eq([3, %(mtshare: cluster name "a|b" must be 1-64 letters, digits, '_', '-', '.'\n)])
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run",
                           env: job_env("mtowner", "SLURM_RESTART_COUNT" => "-1"))
    expect(code).to eq(2)
    expect(err).to include("--restarts")
  end

  it "refuses an unreadable key with a clear message when run by a non-member" do
    out, err, code = mtshare("mtoutsider", "publish", "--group", "mtclass", "--app", "A", "--dry-run")
    expect(out).to eq("")
    expect(code).to eq(4)
    expect(err).to eq("mtshare: #{@key_dir}/mtclass.key: permission denied for mtoutsider: only members of group mtclass can read its key\n")
  end

  it "lets a user whose primary group is the group publish" do
    out, _, code = mtshare("mtprimary", "publish", "--group", "mtclass", "--app", "A", "--dry-run")
    expect(code).to eq(0)
    expect(open_name(out.chomp, "mtprimary")["group"]).to eq("mtclass")
  end

  it "refuses to seal for an owner other than the user running it" do
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run", env: job_env("mtmember"))
    expect(code).to eq(3)
    expect(err).to include("the job's owner is mtmember (SLURM_JOB_USER) but mtshare runs as mtowner")
  end

  it "refuses a name over 1024 characters, naming its size" do
    sets = (1..30).flat_map { |i| ["--set", "k#{i}=#{Random.new(i).bytes(24).unpack1("H*")}"] }
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", *sets, "--dry-run")
    expect(code).to eq(3)
    expect(err).to match(/\Amtshare: sealed name would be \d{4} characters, over Slurm's 1024-character job-name limit: trim about \d+ characters \(.*connection values take \d+ bytes.*\)\n\z/)
  end

  it "gives bad input a one-line reason and exit code 3" do
    [[%w[--set Host=x], /connection key "Host"/], [%w[--set novalue], /--set "novalue" must look like KEY=VALUE/],
     [%w[--env NOPE_UNSET], /\$NOPE_UNSET is not set/], [%w[--delivery ../x], /delivery token/],
     [%w[--allow a/b], /user "a\/b"/]].each do |args, why|
      _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", *args, "--dry-run")
      expect([code, err.lines.size]).to eq([3, 1]), err
      expect(err).to match(why)
    end
  end


  it "warns when a secret is on its command line and names the safe flags" do
    env = job_env("mtowner", "DB_PASSWORD" => "s3cret-from-env")
    base = ["publish", "--group", "mtclass", "--app", "A", "--set", "host=n1", "--dry-run"]
    _, err, code = mtshare("mtowner", *base, "--set", "db_password=hunter2", "--set", "api_key=k", env: env)
    expect(code).to eq(0)
    expect(err.lines.grep(/warning: --set (db_password|api_key)=… put a secret on this command line, which every user on this node can read .* pass it as --env \1=VARIABLE .* or --set-file \1=PATH/).size).to eq(2), err
    expect(err).not_to include("hunter2")
    # The same secret from the environment: no warning.
    _, err, code = mtshare("mtowner", *base, "--env", "db_password=DB_PASSWORD", env: env)
    expect([code, err]).to match([0, satisfy { |e| !e.include?("warning") }])
  end

  it "warns when a file that holds a secret can be read by others, and names the fix" do
    secret = File.join(@tmp, "pw")
    conn = File.join(@tmp, "conn.env")
    File.write(secret, "hunter2\n")
    File.write(conn, "db_password=hunter2\nhost=n1\n")
    FileUtils.chown("mtowner", nil, [secret, conn])
    File.chmod(0o644, secret)
    File.chmod(0o640, conn)
    base = ["publish", "--group", "mtclass", "--app", "A", "--dry-run"]
    _, err, code = mtshare("mtowner", *base, "--set-file", "api_key=#{secret}", "--from-file", conn)
    expect(code).to eq(0)
    expect(err).to include("warning: --set-file api_key=#{secret}: the file holds a secret and its mode 0644 lets others on this host read it: chmod 600 #{secret}",
                           "warning: --from-file #{conn}: the file holds a secret and its mode 0640 lets others on this host read it: chmod 600 #{conn}")
    File.chmod(0o600, secret)
    File.chmod(0o600, conn)
    _, err, = mtshare("mtowner", *base, "--set-file", "api_key=#{secret}", "--from-file", conn)
    expect(err).not_to include("warning")
  end

  it "reads a --from-file once: a named pipe that passed a secret publishes (not waits for a second writer), and its mode is judged" do
    fifo = File.join(@tmp, "conn.fifo")
    File.mkfifo(fifo)
    FileUtils.chown("mtowner", nil, fifo)
    File.chmod(0o640, fifo)
    writer = Thread.new { File.write(fifo, "# the database\ndb_password=hunter2\n") }
    cmd = ["timeout", "10", "runuser", "-u", "mtowner", "--", "env", "-i", *job_env("mtowner").map { |k, v| "#{k}=#{v}" }, @bin,
           "publish", "--group", "mtclass", "--app", "A", "--dry-run", "--from-file", fifo]
    out, err, status = Open3.capture3(*cmd, chdir: @tmp)
    writer.join
    expect([status.exitstatus, err]).to match([0, a_string_including("warning: --from-file #{fifo}: the file holds a secret and its mode 0640 lets others on this host read it: chmod 600 #{fifo}")])
    expect(open_name(out.chomp, "mtowner")["message"]["connection"]).to eq("db_password" => "hunter2")
  end

  it "says plainly that --allow does not keep a secret from the rest of the group" do
    env = job_env("mtowner", "K" => "abc")
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--env", "api_key=K", "--allow", "mtmember",
                           "--dry-run", env: env)
    expect(code).to eq(0)
    expect(err).to include("warning: --allow mtmember only chooses who is shown this share: every member of group mtclass holds the group's key and can open it, and so read api_key")
    out, = mtshare("mtowner", "publish", "--help")
    expect(out.gsub(/\s+/, " ")).to include("Not a lock: every member of the group holds the group's key and can open the share")
  end
  context "with a scontrol on PATH" do
    def fake_scontrol(body)
      FileUtils.mkdir_p(File.join(@tmp, "fakebin"))
      File.write(File.join(@tmp, "fakebin/scontrol"), "#!/bin/sh\n#{body}\n")
      File.chmod(0o755, File.join(@tmp, "fakebin/scontrol"))
      FileUtils.touch(File.join(@tmp, "calls"))
      File.chmod(0o666, File.join(@tmp, "calls"))
    end

    it "renames the job with scontrol update and reports the size" do
      fake_scontrol(%(printf '%s\\n' "$@" >> #{@tmp}/calls))
      out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--set", "host=n1")
      expect([code, err]).to eq([0, ""])
      expect(out).to match(/\Amtshare: published job 777: card share "A" for group mtclass .*name is \d+ of 1024 characters\n\z/)
      args = File.read(File.join(@tmp, "calls")).lines.map(&:chomp)
      expect(args[0..1]).to eq(%w[update JobId=777])
      expect(open_name(args[2].delete_prefix("JobName="), "mtowner")["message"]["connection"]).to eq("host" => "n1")
    end

    it "restores the submitted name on unshare" do
      fake_scontrol(%(printf '%s\\n' "$@" >> #{@tmp}/calls))
      _, _, code = mtshare("mtowner", "unshare")
      expect(code).to eq(0)
      expect(File.read(File.join(@tmp, "calls")).lines.map(&:chomp)).to eq(%w[update JobId=777 JobName=ollama-service])
    end

    it "does not put a sealed name back on unshare (SLURM_JOB_NAME after a requeue)" do
      fake_scontrol(%(printf '%s\\n' "$@" >> #{@tmp}/calls))
      name, = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run")
      _, err, code = mtshare("mtowner", "unshare", env: job_env("mtowner", "SLURM_JOB_NAME" => name.chomp,
                                                                          "SLURM_RESTART_COUNT" => "1"))
      expect([code, err]).to eq([3, "mtshare: the name to restore is itself a share (SLURM_JOB_NAME after a requeue of a shared job): give --name with a plain name\n"])
      expect(File.read(File.join(@tmp, "calls"))).to eq("")
      _, _, code = mtshare("mtowner", "unshare", "--name", "ollama-service", env: job_env("mtowner", "SLURM_JOB_NAME" => name.chomp))
      expect(code).to eq(0)
    end

    it "fails with exit 5 when scontrol complains, even on exit 0" do
      fake_scontrol("echo 'slurm_update error: Invalid user id' >&2; exit 0")
      _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A")
      expect([code, err]).to eq([5, "mtshare: scontrol: slurm_update error: Invalid user id\n"])
    end
  end

  it "inspects a name: fields and size for anyone, content for members" do
    name, = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--set", "host=n1", "--dry-run")
    name = name.chomp
    out, _, code = mtshare("mtoutsider", "inspect", name)
    expect(code).to eq(0)
    expect(out).to include("group    mtclass", "size     #{name.size} of 1024", "format   2 (key ", "bound to job, owner, cluster and run)",
                           "content  not decoded: give --job-id, --owner and --cluster (and --restarts after a requeue)")
    out, _, code = mtshare("mtmember", "inspect", name, "--job-id", "777", "--owner", "mtowner")
    expect(code).to eq(0)
    expect(out).to include("content  not decoded: give --cluster")
    out, err, code = mtshare("mtoutsider", "inspect", name, "--job-id", "777", "--owner", "mtowner", "--cluster", "mtcluster")
    expect(code).to eq(4)
    expect(out).to include("group    mtclass")
    expect(err).to eq("mtshare: #{@key_dir}/mtclass.key: permission denied for mtoutsider: only members of group mtclass can read its key\n")
    out, _, code = mtshare("mtmember", "inspect", name, "--job-id", "777", "--owner", "mtowner", "--cluster", "mtcluster")
    expect(code).to eq(0)
    expect(out).to include("app      A", %(conn     host = "n1"), "bound    job 777 of mtowner, run 0 (restart count) on cluster mtcluster")
    [%w[--job-id 778 --cluster mtcluster], %w[--job-id 777 --cluster other], %w[--job-id 777 --cluster mtcluster --restarts 1]].each do |args|
      _, err, code = mtshare("mtmember", "inspect", name, "--owner", "mtowner", *args)
      expect([code, err.lines.size]).to eq([6, 1]), args.inspect
      expect(err).to match(/\Amtshare: .*seal does not/)
    end
  end

  it "refuses out-of-range expiries with the flag it was given" do
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--expires-in", "100000years", "--dry-run")
    expect([code, err]).to eq([3, "mtshare: --expires-in reaches past the year 9999\n"])
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--expires-in", "0s", "--dry-run")
    expect([code, err]).to eq([3, "mtshare: --expires-in must be longer than 0 seconds\n"])
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--expires-at", "2001-01-01T00:00:00Z", "--dry-run")
    expect([code, err]).to eq([3, "mtshare: --expires-at is in the past\n"])
  end

  it "uses the site-wide key only when asked, and warns" do
    @keys.generate(site: true)
    File.unlink(File.join(@key_dir, "mtclass.key"))
    _, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--dry-run")
    expect([code, err]).to match([4, /no key for group mtclass/])
    out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", "A", "--allow-site-key", "--dry-run")
    expect(code).to eq(0)
    expect(err).to include("warning: sealed with the site-wide key: every user on the cluster can read this share")
    expect(open_name(out.chomp, "mtowner")["key_id"]).to eq(@keys.opening_keys("mtclass").first.id)
  end

  it "keygen needs root to give the file its owner" do
    _, err, code = mtshare("mtowner", "keygen", "--group", "mtclass", "--key-dir", File.join(@tmp, "k2"))
    expect(code).to eq(4)
    expect(err).to start_with("mtshare: #{@tmp}/k2")
  end
end
