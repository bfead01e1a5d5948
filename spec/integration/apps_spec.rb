# frozen_string_literal: true

require "etc"
require "net/http"
require "ostruct"
require "securerandom"
require "socket"
require "yaml"

# A service app's real templates run as a real job: the owner "launches" the web dashboard app, its
# after.sh publishes it, and a member finds the card and reaches the service through it.
RSpec.describe "service apps launched on the real cluster", :cluster do
  include GradioHelpers

  before { require_cluster! }
  after { cancel_jobs }

  SERVER = <<~'RUBY'
    require "socket"
    srv = TCPServer.new("127.0.0.1", Integer(ARGV[0]))
    loop do
      c = srv.accept
      c.gets
      body = "hello from #{ENV["SLURM_JOB_USER"]}'s dashboard"
      c.write "HTTP/1.1 200 OK\r\nContent-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}"
      c.close
    end
  RUBY

  # What OOD's basic template does around the app's scripts (ood_core batch_connect/template.rb,
  # base_script): before.sh, script.sh in the background as SCRIPT_PID, after.sh, then it waits on the
  # script; clean_up stops the script's children and exits with the status. With its two helpers.
  def job_script(app, context, host:, find_port:)
    ctx = OpenStruct.new(context)
    render = lambda do |file|
      b = Class.new { def initialize(c) = (@c = c); def context = @c; def b = binding }.new(ctx).b
      path = File.join(ROOT, "ood/apps", app, file)
      File.exist?(path) ? ERB.new(File.read(path)).result(b) : ""
    end
    # The app's other template files (chat.py) beside script.sh, as OOD copies them into the job's directory.
    files = lambda do
      Dir[File.join(ROOT, "ood/apps", app, "template/*")].reject { |f| f.end_with?(".erb") }.map do |f|
        %(cat > "${mt_job_dir}/#{File.basename(f)}" <<'MT_FILE_END'\n#{File.read(f)}MT_FILE_END)
      end.join("\n")
    end
    <<~SH
      #!/bin/bash
      host=#{host}
      export host
      find_port() { #{find_port}; }
      wait_until_port_used() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.2; done; return 1; }
      clean_up() { echo "Cleaning up..."; [[ ${SCRIPT_PID} ]] && pkill -P ${SCRIPT_PID} || :; pkill -P $$; exit ${1:-0}; }
      #{render.call("template/before.sh.erb")}
      mt_job_dir="$(mktemp -d /tmp/mtjob.XXXXXX)"
      trap 'rm -rf "${mt_job_dir}"' EXIT
      cat > "${mt_job_dir}/script.sh" <<'MT_SCRIPT_END'
      #{render.call("template/script.sh.erb")}
      MT_SCRIPT_END
      chmod 700 "${mt_job_dir}/script.sh"
      #{files.call}
      "${mt_job_dir}/script.sh" &
      SCRIPT_PID=$!
      #{render.call("template/after.sh.erb")}
      echo "connection.yml written"
      wait ${SCRIPT_PID} || clean_up 1
      clean_up
    SH
  end

  FIND_PORT = %(ruby -rsocket -e 's = TCPServer.new("127.0.0.1", 0); print s.addr[1]; s.close')

  # Submits the app's job as mtowner, the way OOD would; waits until it published itself or, with
  # publishes: false, until it ended, or with publishes: :ready (a client app), until after.sh is done. render_env: the dashboard's settings when OOD renders the
  # templates; env: the job's environment. host: OOD's $host (its default: host=$(hostname)); a share's
  # host must be a node of its job, so by default the test cluster's node (this host, resolving to
  # 127.0.0.1 here: testcluster).
  def launch(app, context, publishes: true, env: {}, render_env: {}, host: node_of("mtcluster"), find_port: FIND_PORT, timeout: 90, user: "mtowner")
    script = ENV.to_h.merge("MULTITENANT_PUBLISHER" => File.join(lab, "mtshare")).merge(render_env).then do |vars|
      old = ENV.to_h
      ENV.replace(vars)
      job_script(app, context, host: host, find_port: find_port)
    ensure
      ENV.replace(old)
    end
    @launches = (@launches || 0) + 1
    log = File.join(lab, "#{app}-#{@launches}.out")
    FileUtils.rm_f(log)
    FileUtils.touch(log)
    FileUtils.chown(user, nil, log)
    path = File.join(lab, "#{app}-#{@launches}-job.sh")
    File.write(path, script)
    File.chmod(0o755, path)
    # As OOD renders it (BatchConnect::App#submit_opts): in the session context itself.
    submit = ERB.new(File.read(File.join(ROOT, "ood/apps", app, "submit.yml.erb")), trim_mode: "-").result(OpenStruct.new(context).instance_eval { binding })
    native = YAML.safe_load(submit).dig("script", "native") || []
    out, err, = run_as(user, "sbatch", "--parsable", *native, "-o", log, "--chdir", lab, path,
                       env: { "MULTITENANT_KEY_DIR" => key_dir }.merge(env))
    id = out.strip
    expect(id).to match(/\A\d+\z/), err
    (@jobs ||= []) << id
    @log = log
    if publishes == :ready
      poll("#{app} to be ready", timeout: timeout) do
        File.read(log).include?("connection.yml written") || (Open3.capture2("squeue", "-h", "-j", id).first.strip.empty? && raise("#{app} ended:\n#{File.read(log)}"))
      end
    elsif publishes
      poll("#{app} to publish itself", timeout: timeout) do
        job_name(id).start_with?("mt|mtclass|") || (Open3.capture2("squeue", "-h", "-j", id).first.strip.empty? && raise("#{app} ended:\n#{File.read(log)}"))
      end
    else
      poll("#{app} to end", timeout: timeout) { Open3.capture2("squeue", "-h", "-j", id).first.strip.empty? }
    end
    id
  end

  # How the job ended, from accounting: [state, exit code, name].
  def ended(id)
    poll("job #{id} in accounting as ended", timeout: 30) do
      out, = Open3.capture2("sacct", "-n", "-X", "-P", "-j", id, "--format=State,ExitCode,JobName")
      row = out.lines.first.to_s.strip.split("|")
      row unless row.empty? || %w[PENDING RUNNING].include?(row[0])
    end
  end

  def expect_not_published(id, message)
    state, code, name = ended(id)
    text = File.read(@log)
    expect([state, code]).to eq(%w[FAILED 1:0]), text
    expect(name).not_to start_with("mt|")
    expect(text.lines(chomp: true).grep(/\Amultitenant: .+: not published\z/)).to match([a_string_including(message)]), text
    expect(text).not_to include("connection.yml written")
    text
  end

  # What another user (mtoutsider) reads of every process's command line on the node, sweeping /proc
  # as fast as it can while the block runs: [sweeps made, distinct command lines, NULs as spaces].
  WATCHER = <<~'PY'
    import os, sys
    out, stop = sys.argv[1], sys.argv[2]
    seen, sweeps = set(), 0
    while not os.path.exists(stop):
        sweeps += 1
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/cmdline" % p, "rb") as f:
                        c = f.read()
                except OSError:
                    continue
                if c:
                    seen.add(c)
    with open(out, "wb") as f:
        f.write(b"%d\n" % sweeps + b"".join(c.replace(b"\0", b" ").replace(b"\n", b" ") + b"\n" for c in seen))
  PY

  def watch_cmdlines
    dir = Dir.mktmpdir("mtwatch", lab)
    FileUtils.chown("mtoutsider", nil, dir)
    out = File.join(dir, "seen")
    stop = File.join(dir, "stop")
    pid = Process.spawn("runuser", "-u", "mtoutsider", "--", "python3", "-c", WATCHER, out, stop)
    begin
      yield
    ensure
      FileUtils.touch(stop)
      Process.wait(pid)
    end
    lines = File.read(out).lines(chomp: true)
    [Integer(lines.shift), lines]
  end

  # The watcher swept often, saw the job's own processes (proof), and no secret in any command line.
  def expect_no_secret_seen(watched, proof, *secrets)
    sweeps, seen = watched
    expect(secrets).to all(match(/\A\h{32}\z/))
    expect(sweeps).to be > 20
    expect(seen.grep(proof)).not_to be_empty, "the watcher never saw #{proof.inspect}"
    expect(seen.select { |l| secrets.any? { |v| l.include?(v) } }).to eq([])
  end

  # A request as a member's program makes it; key: the share's key as a Bearer token.
  def gate_get(url, key: nil, cookie: nil, &blk)
    uri = URI(url)
    req = Net::HTTP::Get.new(uri)
    req["Authorization"] = "Bearer #{key}" if key
    req["Cookie"] = cookie if cookie
    Net::HTTP.start(uri.host, uri.port, nil, read_timeout: 10) { |http| http.request(req, &blk) }
  end

  # Opens a WebSocket at <url>ws through the gate: [socket, response head].
  def ws_open(url, key)
    uri = URI(url)
    s = TCPSocket.new(uri.host, uri.port)
    s.write("GET #{uri.path}ws HTTP/1.1\r\nHost: #{uri.host}:#{uri.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n#{key ? "Authorization: Bearer #{key}\r\n" : ""}\r\n")
    head = +""
    Timeout.timeout(10) { head << s.readpartial(1) until head.end_with?("\r\n\r\n") }
    [s, head]
  end

  # One masked text frame out, the echoed frame's text back.
  def ws_echo(socket, text)
    mask = Random.bytes(4)
    payload = text.bytes.each_with_index.map { |b, i| b ^ mask.getbyte(i % 4) }.pack("C*")
    socket.write([0x81, 0x80 | text.bytesize].pack("CC") + mask + payload)
    Timeout.timeout(10) do
      head = socket.read(2).bytes
      socket.read(head[1] & 0x7F)
    end
  end

  it "offers as share groups exactly the user's groups that have a key, as the user sees them" do
    options = lambda do |user|
      out, err, status = run_as(user, RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-rmultitenant", "-rjson", "-e",
                                "puts JSON.generate(MultiTenant::Apps.group_options)", env: { "MULTITENANT_KEY_DIR" => key_dir })
      raise err unless status.success?

      JSON.parse(out)
    end
    expect(options.call("mtmember")).to eq([%w[mtclass mtclass]])
    expect(options.call("mtprimary")).to eq([%w[mtclass mtclass]])
    expect(options.call("mtoutsider")).to eq([["No group of yours has a multitenant key: ask your admin", ""]])
  end

  it "runs the database app with PostgreSQL; a member logs in with the credentials from the card" do
    context = { "mt_group" => "mtclass", "db_engine" => "postgresql", "db_name" => "msba",
                "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default", "mt_expires_hours" => "" }
    id = nil
    watched = watch_cmdlines { id = launch("multitenant-database", context) }
    conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
    expect(conn).to include("db_engine" => "postgresql", "db_name" => "msba", "db_user" => "msba_user", "host" => node_of("mtcluster"))
    expect_no_secret_seen(watched, /\Apostgres -D /, conn["db_password"])
    expect(conn["jdbc_url"]).to eq("jdbc:postgresql://#{node_of("mtcluster")}:#{conn["port"]}/msba")
    out, err, status = run_as("mtmember", "psql", "-h", conn["host"], "-p", conn["port"], "-U", conn["db_user"], "-d", conn["db_name"],
                              "-tAc", "select current_database() || ' as ' || current_user", env: { "PGPASSWORD" => conn["db_password"] })
    expect(status).to be_success, "#{err}\n#{File.read(@log)}"
    expect(out.strip).to eq("msba as msba_user")
    _, err, status = run_as("mtoutsider", "psql", "-h", conn["host"], "-p", conn["port"], "-U", conn["db_user"], "-d", "msba",
                            "-tAc", "select 1", env: { "PGPASSWORD" => "wrong" })
    expect(status).not_to be_success
    expect(err).to include("password authentication failed")
  end

  DASHBOARD = { "mt_group" => "mtclass", "app_title" => "Lab dashboard", "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default",
                "mt_expires_hours" => "" }.freeze

  it "publishes itself when launched, and the member's card leads to the running service: only through its gate, with the share's key" do
    File.write(File.join(lab, "server.rb"), SERVER)
    watched = nil
    id = nil
    watched = watch_cmdlines { id = launch("multitenant-dashboard", DASHBOARD.merge("app_command" => "ruby #{lab}/server.rb \"$port\"")) }
    root = dataroot_for("mtmember")
    result = discover_as("mtmember", dataroot: root)
    spec = result["specs"].fetch(id)
    expect(spec["accounting"]).to include("mta" => "Lab dashboard", "mtm" => "card")
    url = spec["connection"]["url"]
    key = spec["connection"]["api_key"]
    expect(url).to match(%r{\Ahttp://#{Regexp.escape(node_of("mtcluster"))}:\d+/\z})
    conn = JSON.parse(File.read(Dir[File.join(root, "batch_connect/sys/multitenant-delivery_default/output/*/connection.yml")].first))
    expect(conn).to include("url" => url, "api_key" => key)
    expect_no_secret_seen(watched, /mtshare gate --listen 0\.0\.0\.0:#{URI(url).port} --upstream 127\.0\.0\.1:\d+ \z/, key)
    expect(gate_get(url, key: key).body).to eq("hello from mtowner's dashboard")
    refused = gate_get(url)
    expect([refused.code, refused["WWW-Authenticate"], refused.body]).to match(["401", /\ABearer /, /\Amultitenant: this service needs its share's key/])
    expect(gate_get(url, key: "0" * 32).code).to eq("401")
    # The outsider finds no share, and the service's own port does not let them in.
    expect(discover_as("mtoutsider")["specs"]).not_to have_key(id)
    out, = run_as("mtoutsider", "curl", "--noproxy", "*", "-s", "-o", "/dev/null", "-w", "%{http_code}", url)
    expect(out).to eq("401")
  end

  it "the gate: another share's key is refused; a browser logs in once and keeps an HttpOnly cookie; streaming and WebSocket pass; nothing of the gate's reaches the service" do
    release = File.join(lab, "release-#{Process.pid}-#{rand(10**9)}")
    app = DASHBOARD.merge("app_command" => "exec python3 #{ROOT}/spec/fixtures/gate-upstream \"$port\" #{release}")
    id = launch("multitenant-dashboard", app)
    other = launch("multitenant-dashboard", app.merge("app_title" => "Other lab"))
    specs = discover_as("mtmember")["specs"]
    url, key = specs.fetch(id)["connection"].values_at("url", "api_key")
    other_url, other_key = specs.fetch(other)["connection"].values_at("url", "api_key")
    expect(other_key).not_to eq(key)
    expect([gate_get(url, key: other_key).code, gate_get(other_url, key: key).code]).to eq(%w[401 401])
    expect([gate_get(url, key: key).code, gate_get(other_url, key: other_key).code]).to eq(%w[200 200])

    login = lambda do |k|
      uri = URI("#{url}?multitenant-login")
      Net::HTTP.start(uri.host, uri.port, nil) do |http|
        http.post(uri.request_uri, URI.encode_www_form("multitenant_key" => k), "Content-Type" => "application/x-www-form-urlencoded")
      end
    end
    expect(login.call(other_key).code).to eq("401")
    res = login.call(key)
    expect([res.code, res["Location"]]).to eq(["303", "./"])
    set_cookie = res["Set-Cookie"]
    expect(set_cookie).to match(/\Amultitenant_gate_\h{8}=[^;\s]+; /)
    expect(set_cookie).to include("HttpOnly")
    expect(set_cookie).not_to match(/path=/i)
    expect(set_cookie).not_to include(key)
    cookie = set_cookie.split(";").first
    expect(gate_get(url, cookie: cookie).body).to eq("hello from mtowner's dashboard")
    expect(gate_get(other_url, cookie: cookie).code).to eq("401")

    seen = JSON.parse(gate_get("#{url}headers", key: key, cookie: "#{cookie}; theme=dark").body)
    expect(seen).not_to have_key("authorization")
    expect(seen["cookie"]).to eq("theme=dark")

    chunks = []
    gate_get("#{url}stream", key: key) do |r|
      expect(r.code).to eq("200")
      # "last" comes only after the client has "first": a gate that held the response back would time out here.
      r.read_body do |c|
        chunks << c
        FileUtils.touch(release)
      end
    end
    expect(chunks.first).to eq("first\n")
    expect(chunks.join).to eq("first\nlast\n")

    socket, head = ws_open(url, key)
    expect(head).to start_with("HTTP/1.1 101").and include("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    expect(ws_echo(socket, "hello through the gate")).to eq("hello through the gate")
    expect(ws_echo(socket, "and again")).to eq("and again")
    socket.close
    socket, head = ws_open(url, nil)
    expect(head).to start_with("HTTP/1.1 401")
    socket.close
  end

  it "the dashboard app's Unix-socket choice: the command serves on $socket in a private directory, and members reach it only through the gate" do
    app = DASHBOARD.merge("app_listen" => "unix", "app_command" => "exec python3 #{ROOT}/spec/fixtures/gate-upstream \"$socket\" /nonexistent")
    id = launch("multitenant-dashboard", app)
    conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
    expect(gate_get(conn["url"], key: conn["api_key"]).body).to eq("hello from mtowner's dashboard")
    expect(gate_get(conn["url"]).code).to eq("401")
    owner = Etc.getpwnam("mtowner").uid
    sock = Dir["/tmp/mtweb.*/http.sock"].select { |p| File.stat(p).uid == owner }.max_by { |p| File.mtime(p) }
    expect(sock).not_to be_nil
    expect(File.stat(File.dirname(sock)).mode & 0o777).to eq(0o700)
    _, err, status = run_as("mtoutsider", "python3", "-c", "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])", sock)
    expect(status).not_to be_success
    expect(err).to include("Permission denied")
  end

  DB = { "mt_group" => "mtclass", "db_engine" => "postgresql", "db_name" => "msba",
         "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default", "mt_expires_hours" => "" }.freeze

  def member_psql(conn, sql)
    run_as("mtmember", "psql", "-X", "-h", conn["host"], "-p", conn["port"], "-U", conn["db_user"], "-d", conn["db_name"],
           "-tAc", sql, env: { "PGPASSWORD" => conn["db_password"] })
  end

  it "runs the database app under a TMPDIR so long that a socket there would exceed 107 bytes: its socket is elsewhere, it publishes, a member logs in" do
    tmp = File.join(lab, "t" * 100)
    FileUtils.mkdir_p(tmp)
    FileUtils.chown("mtowner", nil, tmp)
    id = launch("multitenant-database", DB, env: { "TMPDIR" => tmp })
    conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
    out, err, status = member_psql(conn, "select current_user")
    expect(status).to be_success, "#{err}\n#{File.read(@log)}"
    expect(out.strip).to eq("msba_user")
    expect(Dir[File.join(tmp, "multitenant-db.*", "data")]).not_to be_empty
  end

  it "runs the database app with MariaDB; a member logs in over TCP with the card's credentials" do
    id = nil
    watched = watch_cmdlines { id = launch("multitenant-database", DB.merge("db_engine" => "mariadb"), timeout: 120) }
    conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
    expect_no_secret_seen(watched, /\Amariadbd /, conn["db_password"])
    expect(conn).to include("db_engine" => "mariadb", "db_user" => "msba_user", "host" => node_of("mtcluster"))
    out, err, status = run_as("mtmember", "mariadb", "--no-defaults", "--protocol=TCP", "-h", conn["host"], "-P", conn["port"], "-u", conn["db_user"],
                              "-D", conn["db_name"], "-N", "-e", "select current_user()", env: { "MYSQL_PWD" => conn["db_password"] })
    expect(status).to be_success, "#{err}\n#{File.read(@log)}"
    expect(out.strip).to eq("msba_user@%")
  end

  it "fails the database app whose server dies (its port is taken): one line says so, nothing is published, the job fails" do
    taken = TCPServer.new("::", 0) # both IPv6 and IPv4: PostgreSQL binds neither
    port = taken.addr[1]
    # The apps ask the kernel for a free port through python3: without it they use OOD's find_port, here
    # one that hands out the taken port.
    shim = File.join(lab, "no-python3")
    FileUtils.mkdir_p(shim)
    File.write(File.join(shim, "python3"), "#!/bin/sh\nexit 127\n")
    FileUtils.chmod_R(0o755, shim)
    id = launch("multitenant-database", DB, publishes: false, find_port: "echo #{port}", timeout: 120,
                                            env: { "MULTITENANT_READY_SECONDS" => "60", "PATH" => "#{shim}:/usr/local/bin:/usr/bin:/bin" })
    text = expect_not_published(id, "PostgreSQL on #{node_of("mtcluster")}:#{port}: the server was not set up: the service ended first")
    expect(text).to include("PostgreSQL exited with status 1 before it accepted connections")
    expect(text).to match(/could not (bind|create any TCP\/IP sockets)/)
  ensure
    taken&.close
  end

  context "the LLM app with a stand-in ollama" do
    LLM = { "mt_group" => "mtclass", "ollama_model" => "tiny:1b", "mt_method" => "card",
            "mt_delivery" => "sys/multitenant-delivery_default", "mt_expires_hours" => "" }.freeze
    OLLAMA = { "MULTITENANT_OLLAMA" => File.join(ROOT, "spec/ood/fake-ollama") }.freeze

    # A host name members reach that is not loopback: the server must listen on every interface.
    def outward_ip
      Socket.ip_address_list.find { |a| a.ipv4? && !a.ipv4_loopback? }&.ip_address or skip "no non-loopback IPv4 address here"
    end

    it "publishes nothing when the model pull fails, says so in one line, and the job fails" do
      id = launch("multitenant-llm", LLM, publishes: false, render_env: OLLAMA, host: outward_ip, env: { "FAKE_OLLAMA_PULL" => "fail" })
      text = expect_not_published(id, "tiny:1b was not pulled: the service ended first")
      expect(text).to include("ollama pull tiny:1b failed")
    end

    it "publishes a slow pull only once the published URL lists the model, and a member reaches it there" do
      ip = outward_ip
      # The published host is the node's name (a share's host must be a node of its job); the node's
      # outward address reaches the server too.
      id = nil
      watched = watch_cmdlines { id = launch("multitenant-llm", LLM, render_env: OLLAMA, env: { "FAKE_OLLAMA_PULL" => "slow:5" }) }
      text = File.read(@log)
      inner = text[/Listening on 127\.0\.0\.1:(\d+)/, 1]
      expect(inner).not_to be_nil, text
      conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
      expect(conn["ollama_url"]).to match(%r{\Ahttp://#{Regexp.escape(node_of("mtcluster"))}:\d+\z})
      expect(conn["openai_base_url"]).to eq("#{conn["ollama_url"]}/v1")
      expect_no_secret_seen(watched, /mtshare gate --listen/, conn["api_key"])
      outward = "http://#{ip}:#{URI(conn["ollama_url"]).port}"
      [conn["ollama_url"], outward].each do |url|
        expect(JSON.parse(gate_get("#{url}/api/tags", key: conn["api_key"]).body)["models"].map { |m| m["name"] }).to eq(["tiny:1b"])
        expect(gate_get("#{url}/api/tags").code).to eq("401")
      end
      # ollama itself answers on loopback only: nobody reaches it around the gate.
      expect { TCPSocket.new(ip, Integer(inner)).close }.to raise_error(Errno::ECONNREFUSED)
    end
  end
  context "the vLLM app with a stand-in vllm, and a member's chat with it" do
    VLLM = { "mt_group" => "mtclass", "vllm_model" => "org/tiny", "vllm_gpus" => "0", "vllm_max_model_len" => "4096", "vllm_max_num_seqs" => "",
             "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default", "mt_expires_hours" => "" }.freeze
    VLLM_SITE = { "MULTITENANT_VLLM" => File.join(ROOT, "spec/ood/fake-vllm") }.freeze

    # A chat completion as a member's program asks it, streamed: [HTTP status, the text of the chunks, the raw body].
    def streamed_chat(base, key, model, text)
      uri = URI("#{base}/chat/completions")
      req = Net::HTTP::Post.new(uri, "Content-Type" => "application/json", "Authorization" => "Bearer #{key}")
      req.body = JSON.generate("model" => model, "stream" => true, "messages" => [{ "role" => "user", "content" => text }])
      Net::HTTP.start(uri.host, uri.port, nil, read_timeout: 30) do |http|
        res = http.request(req)
        events = res.body.to_s.split("\n\n").map { |e| e.delete_prefix("data: ") }
        content = events.reject { |e| e == "[DONE]" }.filter_map { |e| JSON.parse(e).dig("choices", 0, "delta", "content") rescue nil }.join # rubocop:disable Style/RescueModifier
        [res.code, content, events]
      end
    end

    # The environment of the running process of `user` whose command line matches `pattern`, read as root.
    def environ_of(user, pattern)
      uid = Etc.getpwnam(user).uid
      pid = Dir["/proc/[0-9]*"].find do |d|
        File.stat(d).uid == uid && File.binread("#{d}/cmdline").tr("\0", " ").strip.match?(pattern)
      rescue SystemCallError
        false
      end
      raise "no process of #{user} matches #{pattern.inspect}" unless pid

      File.binread("#{pid}/environ").split("\0").to_h { |kv| kv.split("=", 2) }
    end

    it "publishes nothing when the model's load fails, says so in one line, and the job fails" do
      id = launch("multitenant-vllm", VLLM, publishes: false, render_env: VLLM_SITE, env: { "FAKE_VLLM_LOAD" => "fail" })
      text = expect_not_published(id, "org/tiny")
      expect(text).to include("OSError: We couldn't connect to 'https://huggingface.co'", "vllm serve org/tiny ended with status 1")
    end

    it "shares vLLM behind its gate once the model is listed; a member's chat job reaches it with the share's key: member → gate → Gradio → openai → vLLM's gate → vllm" do
      venv = chat_python!
      id = nil
      watched = watch_cmdlines { id = launch("multitenant-vllm", VLLM, render_env: VLLM_SITE, env: { "FAKE_VLLM_LOAD" => "slow:3" }) }
      specs = discover_as("mtmember")["specs"]
      conn = specs.fetch(id)["connection"]
      base = conn["openai_base_url"]
      key = conn["api_key"]
      expect(base).to match(%r{\Ahttp://#{Regexp.escape(node_of("mtcluster"))}:\d+/v1\z})
      expect(conn).to include("llm_model" => "org/tiny", "llm_engine" => "vllm", "host" => node_of("mtcluster"), "port" => base[/:(\d+)\/v1\z/, 1])
      expect(specs.fetch(id)["accounting"]).to include("mta" => "vLLM")
      expect_no_secret_seen(watched, %r{spec/ood/fake-vllm serve org/tiny --uds /tmp/mtvllm\.\w{6}/vllm\.sock --served-model-name org/tiny --max-model-len 4096 \z}, key)

      models = JSON.parse(gate_get("#{base}/models", key: key).body)
      expect(models["data"].map { |m| [m["id"], m["max_model_len"]] }).to eq([["org/tiny", 4096]])
      expect(gate_get("#{base}/models").code).to eq("401")
      expect(gate_get("#{base}/models", key: "0" * 32).code).to eq("401")
      code, content, events = streamed_chat(base, key, "org/tiny", "hello from mtmember")
      expect([code, content, events.last]).to eq(["200", "fake vllm says: hello from mtmember", "[DONE]"])
      expect(streamed_chat(base, nil, "org/tiny", "hi").first).to eq("401")
      # Around the gate: vLLM's socket is in the owner's private directory; another user on the node
      # cannot connect to it, the owner can.
      sock = File.read(@log)[%r{Starting vLLM API server on unix:(/tmp/mtvllm\.\w{6}/vllm\.sock) }, 1]
      expect(sock).not_to be_nil, File.read(@log)
      expect(File.stat(File.dirname(sock)).mode & 0o777).to eq(0o700)
      around = ->(user, socket, path) { run_as(user, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket, "http://localhost#{path}") }
      out, err, status = around.call("mtoutsider", sock, "/v1/models")
      expect([out, status.success?]).to eq(["000", false]), err
      expect(err).to include("Permission denied").or include("Couldn't connect")
      expect(around.call("mtowner", sock, "/v1/models").first).to eq("200")

      # The member's chat, offered the share in its form as the member's own discovery lists it.
      MultiTenant.instance_variable_set(:@specs, specs)
      choice = MultiTenant.llm_choices.find { |_, id| specs.dig(id, "connection", "openai_base_url") == base }
      expect(choice).not_to be_nil, MultiTenant.llm_choices.inspect
      chat = nil
      watched = watch_cmdlines do
        chat = launch("multitenant-chat", { "llm_share" => choice.last, "bc_num_hours" => "1" }, publishes: :ready, user: "mtmember",
                                                                                                    render_env: { "MULTITENANT_CHAT_PYTHON" => venv }, timeout: 120)
      end
      log = File.read(@log)
      port = log[/mtshare gate: listening on 0\.0\.0\.0:(\d+)/, 1]
      expect(port).not_to be_nil, log
      python = environ_of("mtmember", %r{/chat\.py\z})
      expect(python).to include("OPENAI_BASE_URL" => base, "OPENAI_API_KEY" => key, "MULTITENANT_LLM_MODEL" => "org/tiny")
      expect(python.keys).not_to include("MULTITENANT_GATE_KEY", "password")
      chat_key = environ_of("mtmember", /mtshare gate --listen 0\.0\.0\.0:#{port} /)["MULTITENANT_GATE_KEY"]
      # Gradio, which holds the LLM's key, is on a socket in the member's private directory: another user
      # on the node cannot reach the chat around its gate.
      chat_sock = python["MULTITENANT_CHAT_SOCKET"]
      expect(chat_sock).to match(%r{\A/tmp/mtchat\.\w{6}/gradio\.sock\z})
      out, err, status = around.call("mtoutsider", chat_sock, "/")
      expect([out, status.success?]).to eq(["000", false]), err
      expect(around.call("mtmember", chat_sock, "/").first).to eq("200")
      expect_no_secret_seen(watched, %r{/chat\.py \z}, key, chat_key)

      url = "http://#{node_of("mtcluster")}:#{port}/"
      expect(gate_get(url).code).to eq("401")
      expect(gate_get(url, key: key).code).to eq("401")
      expect(gate_get(url, key: chat_key).code).to eq("200")
      expect(gradio_chat(url, chat_key, "hello through both gates")).to eq("fake vllm says: hello through both gates")
      expect { gradio_chat(url, key, "hi") }.to raise_error(/HTTP 401/)
      expect(running?(chat)).to be(true)
    ensure
      MultiTenant.instance_variable_set(:@specs, {})
    end
  end
  it "the Jupyter client app hands the chosen LLM's URL and key to the notebook's environment, and its token and the key to no command line" do
    url = "http://#{node_of("mtcluster")}:4000"
    key = SecureRandom.hex(16)
    MultiTenant.instance_variable_set(:@specs, { "41" => { "connection" => { "ollama_url" => url, "openai_base_url" => "#{url}/v1", "api_key" => key } } })
    stub = File.join(lab, "jupyter-stub")
    FileUtils.mkdir_p(stub)
    out = File.join(stub, "env")
    File.write(File.join(stub, "jupyter"), <<~SH)
      #!/bin/sh
      # A stand-in jupyter: records what the notebook would see, then runs a while (the watcher sees it).
      printf '%s\n' "${JUPYTER_TOKEN}" "${OPENAI_BASE_URL}" "${OPENAI_API_KEY}" "${OLLAMA_HOST}" "${OLLAMA_API_KEY}" > #{out}
      sleep 3
    SH
    FileUtils.chmod(0o755, [stub, File.join(stub, "jupyter")])
    FileUtils.chown("mtmember", nil, stub)
    watched = watch_cmdlines do
      launch("multitenant-jupyter", { "llm_share" => "41", "bc_num_hours" => "1" }, publishes: false, user: "mtmember",
                                                                                     env: { "PATH" => "#{stub}:/usr/local/bin:/usr/bin:/bin" })
    end
    token, base, api_key, host, ollama_key = File.read(out).lines(chomp: true)
    expect([base, api_key, host, ollama_key]).to eq(["#{url}/v1", key, url, key])
    expect_no_secret_seen(watched, %r{jupyter-stub/jupyter lab --no-browser}, token, key)
  ensure
    MultiTenant.instance_variable_set(:@specs, {})
  end
end
