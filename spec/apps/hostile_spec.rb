# frozen_string_literal: true

require "ostruct"
require "uri"

# Hostile input to the service apps' job templates, the card view's links and OOD's clusters.d, from an
# adversarial review: each example states a property that holds.
RSpec.describe "hostile input to the apps, the card view and clusters.d" do
  def app_file(app, path) = File.join(ROOT, "ood/apps", app, path)

  def render(app, path, context)
    ctx = OpenStruct.new(context)
    b = Class.new { def initialize(c) = (@c = c); def context = @c; def b = binding }.new(ctx).b
    ERB.new(File.read(app_file(app, path))).result(b)
  end

  def base_ctx(extra = {})
    { "mt_group" => "mtclass", "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default",
      "mt_expires_hours" => "", "bc_num_hours" => "8" }.merge(extra)
  end

  def stub(dir, name, body)
    path = File.join(dir, name)
    File.write(path, "#!/bin/bash\n#{body}\n")
    File.chmod(0o755, path)
  end

  # The browser resolves dot segments in a path-absolute href (WHATWG URL, RFC 3986 5.2.4); so does
  # URI.join.
  def resolved(path) = URI.join("https://ood.example/", path).path

  describe "card links through OOD's node proxy" do
    it "stay below /rnode/<host>/<port>/ once the browser resolves them" do
      conn = { "url" => "http://node1:8080/../../../nginx/stop?redir=/pun/sys/dashboard", "host" => "node1",
               "jobid" => "1", "mt_owner" => "mallory", "mt_group" => "mtclass" }
      html = MultiTenant::View.default(conn)
      href = html[/class="btn btn-primary" href="([^"]*)"/, 1]
      expect(href).to be_nil.or(satisfy { |h| resolved(CGI.unescapeHTML(h)).start_with?("/rnode/node1/8080/") }),
                      "the Open button leads to #{href && resolved(CGI.unescapeHTML(href))}"
    end

    it "never leave the host's prefix for a /rnode/<other host>/ path" do
      path = MultiTenant::View.proxied("http://node1:8080/../../othernode/22/", "node1")
      expect(path.nil? || resolved(path).start_with?("/rnode/node1/8080/")).to be(true), "got #{path} -> #{path && resolved(path)}"
    end

    it "refuse percent-encoded dot segments too (browsers treat %2e%2e as ..)" do
      path = MultiTenant::View.proxied("http://node1:8080/%2e%2e/%2e%2e/%2E%2E/pun/sys/dashboard", "node1")
      expect(path.to_s).not_to match(/%2e/i)
    end
  end

  describe "shared database" do
    # Runs before.sh, script.sh and after.sh as OOD's basic template does, with stub servers; returns the
    # SQL script.sh sent and what the publisher got.
    def db_job(engine:, env: {}, missing: [], login_fails: false)
      Dir.mktmpdir do |dir|
        bin = File.join(dir, "bin")
        FileUtils.mkdir_p(bin)
        missing.each { |c| stub(bin, c, "echo '#{c}: command not found' >&2; exit 127") }
        stub(bin, "mariadb-install-db", "exit 0")
        stub(bin, "mariadbd", "exec sleep 20")
        stub(bin, "initdb", "mkdir -p \"$2\"; touch \"$2/pg_hba.conf\"")
        stub(bin, "postgres", "exec sleep 20")
        stub(bin, "pg_isready", "exit 0")
        stub(bin, "createdb", "exit 0")
        sqlstub = "[ -t 0 ] || cat >> #{dir}/sql.log; echo \"MYSQL_PWD=[${MYSQL_PWD-unset}] PGPASSWORD=[${PGPASSWORD-unset}]\" >> #{dir}/login.log; exit 0"
        login = login_fails ? 'case "$*" in *select\ 1*) [ -t 0 ] || [ -n "$PGCONNECT_TIMEOUT$MYSQL_PWD" ] && { echo "password authentication failed" >&2; exit 2; } ;; esac; ' : ""
        %w[mariadb psql].each { |c| stub(bin, c, login + sqlstub) }
        fake = File.join(dir, "mtshare")
        File.write(fake, "#!/bin/bash\nprintf '%s\\n' \"$@\" > #{dir}/args; echo \"db_password=[${db_password}]\" >> #{dir}/args\n")
        File.chmod(0o755, fake)
        ctx = base_ctx("db_engine" => engine, "db_name" => "msba")
        rendered = with_env("MULTITENANT_PUBLISHER" => fake) { %w[before script after].to_h { |t| [t, render("multitenant-database", "template/#{t}.sh.erb", ctx)] } }
        rendered.each { |t, text| File.write(File.join(dir, "#{t}.sh"), text) }
        File.chmod(0o755, File.join(dir, "script.sh"))
        File.write(File.join(dir, "job.sh"), <<~SH)
          export PATH=#{bin}:$PATH TMPDIR=#{dir} SLURM_JOB_ID=77
          clean_up() { [[ ${SCRIPT_PID} ]] && pkill -P ${SCRIPT_PID} || :; pkill -P $$; exit ${1:-0}; }
          find_port() { echo 4242; }
          host=node1; export host
          source ./before.sh
          ./script.sh &
          SCRIPT_PID=$!
          source ./after.sh
          clean_up 0
        SH
        out, st = Open3.capture2e(env, "timeout", "15", "bash", "job.sh", chdir: dir)
        { out: out, code: st.exitstatus, sql: (File.read("#{dir}/sql.log") rescue ""), # rubocop:disable Style/RescueModifier
          args: (File.read("#{dir}/args") rescue nil) } # rubocop:disable Style/RescueModifier
      end
    end

    it "never creates a passwordless MariaDB user, nor publishes an empty password, when openssl is missing" do
      r = db_job(engine: "mariadb", missing: %w[openssl])
      expect(r[:sql]).not_to include("IDENTIFIED BY ''")
      expect(r[:args].to_s).not_to include("db_password=[]"), "published: #{r[:args]}\n#{r[:out]}"
    end

    it "never publishes a database members cannot log in to, whatever MULTITENANT_READY_SECONDS holds (08)" do
      r = db_job(engine: "postgresql", env: { "MULTITENANT_READY_SECONDS" => "2" }, login_fails: true)
      expect(r[:args]).to be_nil, "published with ready seconds 2:\n#{r[:out]}"
      r = db_job(engine: "postgresql", env: { "MULTITENANT_READY_SECONDS" => "08" }, login_fails: true)
      expect(r[:args]).to be_nil, "published although no login worked; job output:\n#{r[:out]}"
    end

    it "keeps its data directory out of a predictable path in a shared /tmp" do
      before = render("multitenant-database", "template/before.sh.erb", base_ctx("db_engine" => "postgresql", "db_name" => "x"))
      expect(before).not_to match(%r{db_dir="\$\{TMPDIR:-/tmp\}/multitenant-db-\$\{SLURM_JOB_ID\}"})
      expect(before).to include('db_dir="$(mktemp -d "${TMPDIR:-/tmp}/multitenant-db.XXXXXX")"')
    end
  end

  describe "shared LLM" do
    it "publishes once the pull is done when Ollama lists the model under its short name, and ends within the bound when it is never listed" do
      Dir.mktmpdir do |dir|
        bin = File.join(dir, "bin")
        FileUtils.mkdir_p(bin)
        # Ollama lists "library/llama3.2" (or registry.ollama.ai/library/llama3.2) as "llama3.2:latest".
        stub(bin, "curl", <<~'CURL')
          case "$*" in *'-K -'*http_code*) printf 200 ;; *http_code*) printf 401 ;; *) printf '%s' '{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest"}]}' ;; esac
        CURL
        fake = File.join(dir, "mtshare")
        File.write(fake, "#!/bin/sh\ntouch #{dir}/published\n")
        File.chmod(0o755, fake)
        run = lambda do |model|
          after = with_env("MULTITENANT_PUBLISHER" => fake) { render("multitenant-llm", "template/after.sh.erb", base_ctx("ollama_model" => model)) }
          script = <<~SH
            export PATH=#{bin}:$PATH MULTITENANT_READY_SECONDS=2
            sleep 60 & SCRIPT_PID=$!
            host=node1 port=4242 inner_port=4243 MULTITENANT_GATE_KEY=0123456789abcdef0123456789abcdef ollama_url=http://node1:4242 ollama_model=#{Shellwords.escape(model)} mt_llm_dir=#{dir}
            touch #{dir}/pulled
            #{after}
            kill $SCRIPT_PID
          SH
          Open3.capture2e("timeout", "12", "bash", "-c", script, chdir: dir)
        end
        _, st = run.call("library/llama3.2")
        expect([st.exitstatus, File.exist?(File.join(dir, "published"))]).to eq([0, true])
        File.delete(File.join(dir, "published"))
        out, st = run.call("other-model")
        expect(st.exitstatus).to eq(1)
        expect(out).to include("multitenant: http://node1:4242/api/tags did not list other-model: not within 2 s")
        expect(File.exist?(File.join(dir, "published"))).to be(false)
      end
    end
  end

  describe "clusters.d" do
    it "a malformed entry (job: a list) is that cluster's problem, not every cluster's" do
      Dir.mktmpdir do |dir|
        File.write(File.join(dir, "bad.yml"), "v2:\n  job: [adapter]\n")
        File.write(File.join(dir, "good.yml"), "v2:\n  job:\n    adapter: slurm\n    cluster: good\n")
        config = MultiTenant::Config.new(clusters: { "bad" => "bad", "good" => "good" }, clusters_dir: dir)
        targets = nil
        expect { targets = MultiTenant::Clusters.targets(config) }.not_to raise_error
        expect(targets.find { |t| t["name"] == "good" }).not_to have_key("problem")
        expect(targets.find { |t| t["name"] == "bad" }).to have_key("problem")
      end
    end

    it "a malformed bin_overrides is that cluster's problem too" do
      Dir.mktmpdir do |dir|
        File.write(File.join(dir, "odd.yml"), "v2:\n  job:\n    adapter: slurm\n    cluster: odd\n    bin_overrides: squeue\n")
        config = MultiTenant::Config.new(clusters: { "odd" => "odd" }, clusters_dir: dir)
        expect { MultiTenant::Clusters.targets(config) }.not_to raise_error
      end
    end
  end
end
