# frozen_string_literal: true

require "net/http"
require "ostruct"
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

  # What OOD's basic template does around the app's scripts, with its two helper functions.
  def job_script(app, context)
    ctx = OpenStruct.new(context)
    render = lambda do |file|
      b = Class.new { def initialize(c) = (@c = c); def context = @c; def b = binding }.new(ctx).b
      ERB.new(File.read(File.join(ROOT, "ood/apps", app, file))).result(b)
    end
    <<~SH
      #!/bin/bash
      host=127.0.0.1
      find_port() { ruby -rsocket -e 's = TCPServer.new("127.0.0.1", 0); print s.addr[1]; s.close'; }
      wait_until_port_used() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.2; done; return 1; }
      #{render.call("template/before.sh.erb")}
      ( #{render.call("template/script.sh.erb").lines.reject { |l| l.start_with?("#!") }.join.strip} ) &
      #{render.call("template/after.sh.erb")}
      wait
    SH
  end

  def launch(app, context)
    script = ENV.to_h.merge("MULTITENANT_PUBLISHER" => File.join(lab, "mtshare")).then do |env|
      old = ENV.to_h
      ENV.replace(env)
      job_script(app, context)
    ensure
      ENV.replace(old)
    end
    log = File.join(lab, "#{app}.out")
    FileUtils.touch(log)
    FileUtils.chown("mtowner", nil, log)
    path = File.join(lab, "#{app}-job.sh")
    File.write(path, script)
    File.chmod(0o755, path)
    native = YAML.safe_load(ERB.new(File.read(File.join(ROOT, "ood/apps", app, "submit.yml.erb"))).result).dig("script", "native")
    out, err, = run_as("mtowner", "sbatch", "--parsable", *native, "-o", File.join(lab, "#{app}.out"), "--chdir", lab, path,
                       env: { "MULTITENANT_KEY_DIR" => key_dir })
    id = out.strip
    expect(id).to match(/\A\d+\z/), err
    (@jobs ||= []) << id
    poll("#{app} to publish itself", timeout: 90) { job_name(id).start_with?("mt|mtclass|1.") }
    id
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
    expect(conn).to include("db_engine" => "postgresql", "db_name" => "msba", "db_user" => "msba_user", "host" => "127.0.0.1")
    expect(conn["db_password"]).to match(/\A\h{32}\z/)
    expect(conn["jdbc_url"]).to eq("jdbc:postgresql://127.0.0.1:#{conn["port"]}/msba")
    out, err, status = run_as("mtmember", "psql", "-h", conn["host"], "-p", conn["port"], "-U", conn["db_user"], "-d", conn["db_name"],
                              "-tAc", "select current_database() || ' as ' || current_user", env: { "PGPASSWORD" => conn["db_password"] })
    expect(status).to be_success, "#{err}\n#{File.read(File.join(lab, "multitenant-database.out"))}"
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
    expect(url).to match(%r{\Ahttp://127\.0\.0\.1:\d+/\z})
    conn = JSON.parse(File.read(Dir[File.join(root, "batch_connect/sys/multitenant-delivery_default/output/*/connection.yml")].first))
    expect(conn["url"]).to eq(url)
    expect(Net::HTTP.get(URI(url))).to eq("hello from mtowner's dashboard")
  end
end
