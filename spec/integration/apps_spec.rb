# frozen_string_literal: true

require "net/http"
require "ostruct"
require "socket"
require "yaml"

# A service app's real templates run as a real job: the owner "launches" the web dashboard app, its
# after.sh publishes it, and a member finds the card and reaches the service through it.
RSpec.describe "service apps launched on the real cluster", :cluster do
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
      ERB.new(File.read(File.join(ROOT, "ood/apps", app, file))).result(b)
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
  # publishes: false, until it ended. render_env: the dashboard's settings when OOD renders the
  # templates; env: the job's environment. host: OOD's $host (its default: host=$(hostname)); a share's
  # host must be a node of its job, so by default the test cluster's node (this host, resolving to
  # 127.0.0.1 here: testcluster).
  def launch(app, context, publishes: true, env: {}, render_env: {}, host: node_of("mtcluster"), find_port: FIND_PORT, timeout: 90)
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
    FileUtils.chown("mtowner", nil, log)
    path = File.join(lab, "#{app}-#{@launches}-job.sh")
    File.write(path, script)
    File.chmod(0o755, path)
    native = YAML.safe_load(ERB.new(File.read(File.join(ROOT, "ood/apps", app, "submit.yml.erb"))).result).dig("script", "native")
    out, err, = run_as("mtowner", "sbatch", "--parsable", *native, "-o", log, "--chdir", lab, path,
                       env: { "MULTITENANT_KEY_DIR" => key_dir }.merge(env))
    id = out.strip
    expect(id).to match(/\A\d+\z/), err
    (@jobs ||= []) << id
    @log = log
    if publishes
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
    id = launch("multitenant-database", context)
    conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
    expect(conn).to include("db_engine" => "postgresql", "db_name" => "msba", "db_user" => "msba_user", "host" => node_of("mtcluster"))
    expect(conn["db_password"]).to match(/\A\h{32}\z/)
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

  it "publishes itself when launched, and the member's card leads to the running service" do
    File.write(File.join(lab, "server.rb"), SERVER)
    context = { "mt_group" => "mtclass", "app_title" => "Lab dashboard", "app_command" => "ruby #{lab}/server.rb \"$port\"",
                "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default", "mt_expires_hours" => "" }
    id = launch("multitenant-dashboard", context)

    root = dataroot_for("mtmember")
    result = discover_as("mtmember", dataroot: root)
    spec = result["specs"].fetch(id)
    expect(spec["accounting"]).to include("mta" => "Lab dashboard", "mtm" => "card")
    url = spec["connection"]["url"]
    expect(url).to match(%r{\Ahttp://#{Regexp.escape(node_of("mtcluster"))}:\d+/\z})
    conn = JSON.parse(File.read(Dir[File.join(root, "batch_connect/sys/multitenant-delivery_default/output/*/connection.yml")].first))
    expect(conn["url"]).to eq(url)
    expect(Net::HTTP.get(URI(url))).to eq("hello from mtowner's dashboard")
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
    id = launch("multitenant-database", DB.merge("db_engine" => "mariadb"), timeout: 120)
    conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
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
      id = launch("multitenant-llm", LLM, render_env: OLLAMA, env: { "FAKE_OLLAMA_PULL" => "slow:5" })
      text = File.read(@log)
      expect(text).to match(/Listening on 0\.0\.0\.0:\d+/)
      conn = discover_as("mtmember")["specs"].fetch(id)["connection"]
      expect(conn["ollama_url"]).to match(%r{\Ahttp://#{Regexp.escape(node_of("mtcluster"))}:\d+\z})
      outward = "http://#{ip}:#{URI(conn["ollama_url"]).port}"
      [conn["ollama_url"], outward].each do |url|
        expect(JSON.parse(Net::HTTP.get(URI("#{url}/api/tags")))["models"].map { |m| m["name"] }).to eq(["tiny:1b"])
      end
    end
  end
end
