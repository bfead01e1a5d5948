# frozen_string_literal: true

require "ostruct"
require "securerandom"
require "net/http"
require "socket"
require "yaml"

# The service and client apps' templates, rendered as OOD renders them: form.yml.erb at top level,
# submit.yml.erb and template/*.sh.erb with the session context.
RSpec.describe "service and client app templates" do
  include GradioHelpers

  SERVICES = {
    "multitenant-llm" => { "ollama_model" => "gpt-oss:20b" },
    "multitenant-vllm" => { "vllm_model" => "openai/gpt-oss-20b", "vllm_gpus" => "1", "vllm_max_model_len" => "", "vllm_max_num_seqs" => "" },
    "multitenant-database" => { "db_engine" => "postgresql", "db_name" => "msba" },
    "multitenant-dashboard" => { "app_title" => "Lab dashboard", "app_command" => "python3 -m http.server $port" },
    "multitenant-content" => { "content_title" => "Week 3", "content_format" => "markdown", "content" => "# Read\n\n* chapter 3" }
  }.freeze
  EVIL = %(x"; touch /tmp/mt-pwned; echo '$(id)' `id` \\)

  def app_file(app, path) = File.join(ROOT, "ood/apps", app, path)
  def render(app, path, context = nil) = ERB.new(File.read(app_file(app, path))).result(context ? binding_for(context) : TOPLEVEL_BINDING)
  # submit.yml.erb as OOD renders it (BatchConnect::App#submit_opts): in the session context itself.
  def render_submit(app, context) = ERB.new(File.read(app_file(app, "submit.yml.erb")), trim_mode: "-").result(OpenStruct.new(context).instance_eval { binding })

  def binding_for(context)
    ctx = OpenStruct.new(context)
    ctx.instance_eval { |c| c.instance_variable_set(:@context, c) }
    Class.new { def initialize(c) = (@c = c); def context = @c; def b = binding }.new(ctx).b
  end

  def context_for(app, extra = {})
    { "mt_group" => "mtclass", "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default",
      "mt_expires_hours" => "", "bc_num_hours" => "8" }.merge(SERVICES.fetch(app, {})).merge(extra)
  end

  # Runs the rendered after.sh as OOD's job script sources it (script.sh alive as SCRIPT_PID), with a
  # publisher that records its arguments, one per line; returns them, or nil when it did not run.
  # ready: false makes every check fail (curl, psql and mariadb stubs that cannot connect, no ready
  # marker), with MULTITENANT_READY_SECONDS=1. The job's exit status goes in status[:code].
  def published_args(app, context, ready: true, output: [], status: {}, engine: "postgresql")
    Dir.mktmpdir do |dir|
      fake = File.join(dir, "mtshare")
      File.write(fake, "#!/bin/sh\nprintf '%s\\n' \"$@\" > #{dir}/args\n")
      stubs = File.join(dir, "bin")
      FileUtils.mkdir_p(stubs)
      tags = %({"models": [{"name": "m", "model": "m"}], "data": [{"id": "m", "object": "model"}]})
      stub = lambda do |name, body|
        File.write(File.join(stubs, name), "#!/bin/sh\nprintf '%s\\n' \"$* PGPASSWORD=${PGPASSWORD:+set} MYSQL_PWD=${MYSQL_PWD:+set}\" >> #{dir}/#{name}.log\n#{body}\n")
        File.chmod(0o755, File.join(stubs, name))
      end
      if ready
        # The gate answers 401 to a request without the key (-K - carries it on stdin), 200 with it.
        stub.call("curl", "case \"$*\" in *'-K -'*http_code*) printf 200 ;; *http_code*) printf 401 ;; *) printf '%s' '#{tags}' ;; esac")
        %w[psql mariadb].each { |c| stub.call(c, "exit 0") }
      else
        stub.call("curl", "echo 'curl: (7) Failed to connect' >&2; exit 7")
        %w[psql mariadb].each { |c| stub.call(c, "echo 'connection refused' >&2; exit 2") }
      end
      File.chmod(0o755, fake)
      script = <<~SH
        export PATH=#{stubs}:$PATH MULTITENANT_READY_SECONDS=#{ready ? 600 : 1}
        sleep 30 & SCRIPT_PID=$!
        host=node1 port=4242 inner_port=4243 MULTITENANT_GATE_KEY=0123456789abcdef0123456789abcdef ollama_url=http://node1:4242 ollama_model=m url=http://node1:4242/ db_dir=#{dir} mt_llm_dir=#{dir}
        vllm_url=http://node1:4242 vllm_model=m
        #{ready ? 'touch "$db_dir/ready" "$mt_llm_dir/pulled"' : ""}
        db_engine=#{engine} db_name=msba db_user=msba_user db_password=S3cretPw jdbc_url=jdbc:postgresql://node1:4242/msba
        content_format=markdown content_file=#{dir}/content
        echo '# hi' > "$content_file"
        #{with_env("MULTITENANT_PUBLISHER" => fake) { render(app, "template/after.sh.erb", context) }}
        echo "job script goes on"
        kill $SCRIPT_PID
      SH
      out, err, st = Open3.capture3("bash", "-c", script, chdir: dir)
      status[:code] = st.exitstatus
      status[:err] = err
      status[:logs] = Dir[File.join(dir, "*.log")].to_h { |f| [File.basename(f, ".log"), File.read(f)] }
      output.replace(out.lines(chomp: true))
      File.exist?(File.join(dir, "args")) ? File.read(File.join(dir, "args")).split("\n") : nil
    end
  end

  # Runs a whole job as OOD's basic template does (ood_core batch_connect/template.rb, base_script):
  # before.sh, script.sh in the background as SCRIPT_PID, after.sh, then waits on the script; clean_up
  # stops the script's children. `stubs` are commands put first on PATH ({name => shell body}); the
  # publisher records its arguments and, for the LLMs, what the published URL listed at that moment.
  # The app's other template files (chat.py) are beside the scripts, as OOD copies them. Returns {out:,
  # code:, args:, tags_at_publish:, models_at_publish:}; a job that publishes is stopped once it has. A
  # client app publishes nothing: with a block, the block runs once after.sh is done, with the job's
  # connection.yml (as OOD's create_yml writes it) and directory, and the job is stopped after it.
  # A job's file or directory is removed when the job ends (its EXIT trap), within 5 s.
  def expect_gone(path)
    gone = (1..50).find { File.exist?(path) ? (sleep 0.1; false) : true } # rubocop:disable Style/Semicolon
    expect(gone).not_to be_nil, "#{path} is still there"
  end

  def run_job(app, context, host:, env: {}, stubs: {}, timeout: 60, &while_running)
    Dir.mktmpdir do |dir|
      Dir[app_file(app, "template/*")].reject { |f| f.end_with?(".erb") }.each { |f| FileUtils.cp(f, dir) }
      bin = File.join(dir, "bin")
      FileUtils.mkdir_p(bin)
      stubs.each do |name, body|
        File.write(File.join(bin, name), "#!/bin/bash\n#{body}\n")
        File.chmod(0o755, File.join(bin, name))
      end
      fake = File.join(dir, "mtshare")
      File.write(fake, <<~SH)
        #!/bin/sh
        [ "$1" = gate ] && exec #{Shellwords.escape(MultiTenant.publisher_path)} "$@"
        [ -n "${ollama_url}" ] && printf 'header = "Authorization: Bearer %s"\\n' "${MULTITENANT_GATE_KEY}" |
          curl --noproxy '*' -s -K - "${ollama_url}/api/tags" > #{dir}/tags_at_publish
        [ -n "${vllm_url}" ] && printf 'header = "Authorization: Bearer %s"\\n' "${MULTITENANT_GATE_KEY}" |
          curl --noproxy '*' -s -K - "${vllm_url}/v1/models" > #{dir}/models_at_publish
        printf '%s\\n' "$@" > #{dir}/args.tmp && mv #{dir}/args.tmp #{dir}/args
      SH
      File.chmod(0o755, fake)
      settings = env.slice("MULTITENANT_OLLAMA", "MULTITENANT_VLLM", "MULTITENANT_VLLM_LISTEN", "MULTITENANT_CHAT_PYTHON", "MULTITENANT_NODE_PROXY")
      rendered = with_env(settings.merge("MULTITENANT_PUBLISHER" => fake)) do
        %w[before script after].to_h { |t| [t, render(app, "template/#{t}.sh.erb", context)] }
      end
      rendered.each { |t, text| File.write(File.join(dir, "#{t}.sh"), text) }
      File.chmod(0o755, File.join(dir, "script.sh"))
      File.write(File.join(dir, "job.sh"), <<~SH)
        export PATH=#{bin}:$PATH
        clean_up() { echo "Cleaning up..."; [[ ${SCRIPT_PID} ]] && pkill -P ${SCRIPT_PID} || :; pkill -P $$; exit ${1:-0}; }
        find_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }
        host=#{Shellwords.escape(host)}
        export host
        source ./before.sh
        ./script.sh &
        SCRIPT_PID=$!
        source ./after.sh
        (umask 077; printf 'host: %s\\nport: %s\\npassword: %s\\n' "$host" "$port" "${password:-}" > connection.yml.tmp && mv connection.yml.tmp connection.yml)
        echo "connection.yml written"
        wait ${SCRIPT_PID} || clean_up 1
        clean_up
      SH
      out_r, out_w = IO.pipe
      job_id = "9#{rand(10**8)}"
      tmp = env["TMPDIR"] || Dir.mktmpdir("mtjob")
      pid = Process.spawn(env.merge("SLURM_JOB_ID" => job_id, "TMPDIR" => tmp), "bash", "job.sh", chdir: dir, out: out_w, err: out_w, pgroup: true)
      out_w.close
      reader = Thread.new { out_r.read }
      code = nil
      conn = File.join(dir, "connection.yml")
      deadline = Time.now + timeout
      until code || File.exist?(File.join(dir, "args")) || (while_running && File.exist?(conn)) || Time.now > deadline
        _, st = Process.waitpid2(pid, Process::WNOHANG)
        code = st&.exitstatus
        sleep 0.1
      end
      published = File.exist?(File.join(dir, "args"))
      ready = while_running && !code && File.exist?(conn)
      begin
        while_running.call(YAML.safe_load(File.read(conn)), dir) if ready
      ensure
        unless code
          sleep 0.3 if published
          Process.kill("TERM", -pid) rescue nil # rubocop:disable Style/RescueModifier
          Process.wait(pid)
        end
        out = reader.value.lines(chomp: true)
        # A failure in the block shows what the job said.
        warn("#{app}'s job said:", *out) if $!
      end
      at = ->(f) { File.exist?(File.join(dir, f)) ? JSON.parse(File.read(File.join(dir, f))) : nil }
      { out: out, code: code, timed_out: !code && !published && !ready,
        args: published ? File.read(File.join(dir, "args")).split("\n") : nil,
        tags_at_publish: at.call("tags_at_publish"), models_at_publish: at.call("models_at_publish"),
        files: Dir[File.join(bin, "*.{args,log,mode}")].to_h { |f| [File.basename(f), File.read(f)] } }
    ensure
      FileUtils.rm_rf(env["TMPDIR"] ? Dir[File.join(tmp, "multitenant-{db,llm,chat}.*")] : tmp) if tmp
    end
  end

  # A local address that is not loopback: a server listening on 127.0.0.1 only does not answer there.
  def outward_ip
    Socket.ip_address_list.find { |a| a.ipv4? && !a.ipv4_loopback? }&.ip_address or skip "no non-loopback IPv4 address here"
  end

  SERVICES.each_key do |app|
    describe app do
      it "has a valid manifest and form offering the group, delivery, preset and expiry" do
        manifest = YAML.safe_load(File.read(app_file(app, "manifest.yml")))
        expect(manifest).to include("role" => "batch_connect", "category" => "Multitenant")
        form = YAML.safe_load(render(app, "form.yml.erb"))
        expect(form["form"]).to include("mt_group", "mt_expires_hours", "bc_num_hours")
        # OOD would also submit an auto_groups choice as the Slurm account (sbatch -A).
        expect(form["form"]).not_to include("auto_groups")
        expect(form.dig("attributes", "mt_group", "widget")).to eq("select")
        expect(form["form"]).to include("mt_method", "mt_delivery") unless app == "multitenant-content"
        expect(form["attributes"].keys - form["form"]).to eq([])
        expect(form["cluster"]).to be_a(String)
      end

      it "submits with the WCKey" do
        submit = YAML.safe_load(render_submit(app, context_for(app)))
        expect(submit.dig("batch_connect", "template")).to eq("basic")
        expect(submit.dig("script", "native")).to eq(["--wckey=multitenant", *("--gres=gpu:1" if app == "multitenant-vllm")])
      end

      it "renders job scripts bash can parse" do
        %w[before.sh.erb script.sh.erb after.sh.erb].each do |t|
          _, err, status = Open3.capture3("bash", "-n", stdin_data: render(app, "template/#{t}", context_for(app)))
          expect(status).to be_success, "#{t}: #{err}"
        end
      end

      it "publishes in one line through mtshare, with the form's choices as exact arguments" do
        after = render(app, "template/after.sh.erb", context_for(app, "mt_expires_hours" => "2"))
        expect(after.lines.grep(/ publish --/).size).to eq(1)
        # Sealing is mtshare's: the job script itself only makes random keys (mt_secret).
        expect(after.sub(MultiTenant::Apps::SHELL_FUNCTIONS, "")).not_to match(/openssl|gzip|base64/)
        args = published_args(app, context_for(app, "mt_expires_hours" => "2"))
        expect(args.first(3)).to eq(%w[publish --group mtclass])
        expect(args.drop(1).each_slice(2).to_h.slice("--method", "--expires-in")).to eq("--method" => "card", "--expires-in" => "7200s") unless app == "multitenant-content"
      end

      it "passes hostile form input to mtshare as data, never as shell" do
        FileUtils.rm_f("/tmp/mt-pwned")
        ctx = context_for(app, "mt_group" => EVIL, "mt_method" => EVIL, "mt_delivery" => EVIL, "app_title" => EVIL,
                               "content_title" => EVIL, "mt_expires_hours" => EVIL)
        args = published_args(app, ctx)
        expect(File.exist?("/tmp/mt-pwned")).to be(false)
        expect(args[args.index("--group") + 1]).to eq(EVIL)
        expect(args[args.index("--method") + 1]).to eq("card")
        expect(args[args.index("--delivery") + 1]).to start_with("sys/multitenant-delivery_")
        expect(args).not_to include("--expires-in")
      end

      it "lists only the groups it is given, hostile names included, as valid YAML" do
        hostile = [%(a"b: [c] #d {e} 'f' \\g - [h, i]), "ünï"]
        allow(MultiTenant::Apps).to receive(:group_options).and_return(hostile.map { |n| [n, n] })
        form = YAML.safe_load(render(app, "form.yml.erb"))
        expect(form.dig("attributes", "mt_group", "options")).to eq(hostile.map { |n| [n, n] })
      end

      it "submits to MultiTenant::Apps.submit_cluster, and still renders when the gem did not load" do
        allow(MultiTenant::Apps).to receive(:submit_cluster).and_return(%(hpc"x))
        expect(YAML.safe_load(render(app, "form.yml.erb"))["cluster"]).to eq(%(hpc"x))
        hide_const("MultiTenant::Apps")
        form = with_env("MULTITENANT_SUBMIT_CLUSTER" => nil) { YAML.safe_load(render(app, "form.yml.erb")) }
        expect(form["cluster"]).to eq("cluster")
        expect(form.dig("attributes", "mt_group", "options")).to eq([["No group of yours has a multitenant key: ask your admin", ""]])
        form = with_env("MULTITENANT_SUBMIT_CLUSTER" => "hpc") { YAML.safe_load(render(app, "form.yml.erb")) }
        expect(form["cluster"]).to eq("hpc")
      end
    end
  end

  %w[multitenant-llm multitenant-vllm multitenant-database multitenant-dashboard].each do |app|
    it "#{app}: publishes nothing when the service never answers at the published host and port, says so in one line, and the job fails" do
      out = []
      status = {}
      expect(published_args(app, context_for(app), ready: false, output: out, status: status)).to be_nil
      expect(out.grep(/\Amultitenant: .+: not published\z/).size).to eq(1), out.inspect
      expect(out).not_to include("job script goes on")
      expect(status[:code]).to eq(1)
    end
  end

  it "multitenant-dashboard: checks the published URL with an HTTP request, never through a proxy" do
    status = {}
    published_args("multitenant-dashboard", context_for("multitenant-dashboard"), status: status)
    expect(status[:logs]["curl"].lines.map(&:split)).to all(include("--noproxy", "http://node1:4242/"))
  end

  it "multitenant-llm: checks that the published URL's /api/tags lists the model" do
    status = {}
    expect(published_args("multitenant-llm", context_for("multitenant-llm"), status: status)).not_to be_nil
    expect(status[:logs]["curl"].lines.map(&:split)).to all(include("http://node1:4242/api/tags"))
  end

  describe "multitenant-vllm" do
    it "publishes the OpenAI base URL, the model and the engine as exact arguments, the key from the environment" do
      status = {}
      args = published_args("multitenant-vllm", context_for("multitenant-vllm"), status: status)
      expect(args).to eq(%w[publish --group mtclass --app vLLM --method card --delivery sys/multitenant-delivery_default
                            --set host=node1 --set port=4242 --set openai_base_url=http://node1:4242/v1 --set llm_model=m --set llm_engine=vllm
                            --env api_key=MULTITENANT_GATE_KEY])
      expect(status[:logs]["curl"].lines.map(&:split)).to all(include("http://node1:4242/v1/models"))
    end

    # What submit.yml.erb asks of Slurm, rendered as OOD renders it.
    def native(gpus) = YAML.safe_load(render_submit("multitenant-vllm", context_for("multitenant-vllm", "vllm_gpus" => gpus))).dig("script", "native")

    it "requests --gres=gpu:N only for a whole number of GPUs from 1 to 16; anything else requests none" do
      expect(native("1")).to eq(["--wckey=multitenant", "--gres=gpu:1"])
      expect(native("16")).to eq(["--wckey=multitenant", "--gres=gpu:16"])
      expect(native("04")).to eq(["--wckey=multitenant", "--gres=gpu:4"])
      ["0", "", "17", "-1", "1.5", "1e1", "0x2", "2 --exclusive", "2\"\n    - \"--uid=0", EVIL].each do |bad|
        expect(native(bad)).to eq(["--wckey=multitenant"]), bad.inspect
      end
    end

    # Runs before.sh and script.sh with a stand-in vllm that records its arguments and whether it got the
    # gate's key; the gate a stand-in that waits, so the recording is done before script.sh ends.
    def vllm_run(extra, env = {})
      Dir.mktmpdir do |dir|
        stub = File.join(dir, "vllm")
        File.write(stub, %(#!/bin/sh\nprintf '%s\\n' "$@" > #{dir}/argv\necho "key:${MULTITENANT_GATE_KEY:+set}" >> #{dir}/argv\n))
        gate = File.join(dir, "mtshare")
        File.write(gate, "#!/bin/sh\nexec sleep 5\n")
        FileUtils.chmod(0o755, [stub, gate])
        ctx = context_for("multitenant-vllm", extra)
        before, script = with_env(env.merge("MULTITENANT_VLLM" => stub, "MULTITENANT_PUBLISHER" => gate)) do
          %w[before script].map { |t| render("multitenant-vllm", "template/#{t}.sh.erb", ctx) }
        end
        File.write(File.join(dir, "script.sh"), script)
        out, status = Open3.capture2e("bash", "-c", "host=node1\n#{before}\nbash ./script.sh", chdir: dir)
        next [nil, out] unless status.success? && File.exist?(File.join(dir, "argv"))

        [File.read(File.join(dir, "argv")).split("\n"), out]
      end
    end

    it "serves the model on a private Unix socket under its own name, with --max-model-len, --max-num-seqs and --tensor-parallel-size only from validated whole numbers" do
      sock = %r{\A/tmp/mtvllm\.\w{6}/vllm\.sock\z}
      argv, out = vllm_run("vllm_model" => "Qwen/Qwen2.5-7B-Instruct", "vllm_gpus" => "2", "vllm_max_model_len" => "4096", "vllm_max_num_seqs" => "08")
      expect(argv).to eq(["serve", "Qwen/Qwen2.5-7B-Instruct", "--uds", argv[3], "--served-model-name", "Qwen/Qwen2.5-7B-Instruct",
                          "--max-model-len", "4096", "--max-num-seqs", "8", "--tensor-parallel-size", "2", "key:"]), out
      expect(argv[3]).to match(sock)
      # The job's private directory goes with the job.
      expect(File.exist?(File.dirname(argv[3]))).to be(false)
      argv, out = vllm_run("vllm_gpus" => "1")
      expect(argv).to eq(["serve", "openai/gpt-oss-20b", "--uds", argv[3], "--served-model-name", "openai/gpt-oss-20b", "key:"]), out
      FileUtils.rm_f("/tmp/mt-pwned")
      ["0", "-4096", "4096 --trust-remote-code", "1e5", "40.5", "99999999999", "$(touch /tmp/mt-pwned)", EVIL].each do |bad|
        argv, out = vllm_run("vllm_gpus" => bad, "vllm_max_model_len" => bad, "vllm_max_num_seqs" => bad)
        expect(argv).to eq(["serve", "openai/gpt-oss-20b", "--uds", argv[3], "--served-model-name", "openai/gpt-oss-20b", "key:"]), "#{bad.inspect}: #{out}"
      end
      expect(File.exist?("/tmp/mt-pwned")).to be(false)
      # MULTITENANT_VLLM_LISTEN=loopback (a vLLM before 0.9, which has no --uds); any other value keeps the socket.
      argv, out = vllm_run({ "vllm_max_model_len" => "4096" }, { "MULTITENANT_VLLM_LISTEN" => "loopback" })
      expect(argv).to eq(["serve", "openai/gpt-oss-20b", "--host", "127.0.0.1", "--port", argv[5], "--served-model-name", "openai/gpt-oss-20b", "--max-model-len", "4096", "key:"]), out
      expect(Integer(argv[5])).to be > 1024
      ["", "tcp", "LOOPBACK", "127.0.0.1"].each do |other|
        expect(vllm_run({}, { "MULTITENANT_VLLM_LISTEN" => other }).first[2]).to eq("--uds"), other.inspect
      end
    end

    it "refuses a model that vllm would read as an option, or with spaces, in one line, before anything runs" do
      made = Dir["/tmp/mtvllm.*"]
      ["--trust-remote-code", "org/m --trust-remote-code", "", "org/\tm", %(org/tiny<i>"&'$(id)</i>), "a\\nport: 1", "*m", "@m", "m:"].each do |bad|
        argv, out = vllm_run("vllm_model" => bad)
        expect(argv).to be_nil
        expect(out.lines(chomp: true)).to eq(["multitenant: the model must be a Hugging Face model id or a directory (letters, digits and _ . / + = -, not starting with -): not published"]), bad.inspect
      end
      # Refused before the job's private directory is made: nothing is left in /tmp.
      expect(Dir["/tmp/mtvllm.*"] - made).to eq([])
    end

    it "lists its fields in its form, and OOD's connection.yml gets what the owner's view shows" do
      form = YAML.safe_load(render("multitenant-vllm", "form.yml.erb"))
      expect(form["form"]).to eq(%w[mt_group vllm_model vllm_gpus vllm_max_model_len vllm_max_num_seqs mt_allow mt_method mt_delivery mt_expires_hours bc_num_hours])
      expect(form.dig("attributes", "vllm_model", "value")).to eq("openai/gpt-oss-20b")
      expect(form.dig("attributes", "vllm_gpus")).to include("value" => 1, "min" => 0, "max" => 16, "widget" => "number_field")
      expect(form.dig("attributes", "vllm_max_model_len", "value")).to be_nil
      expect(form.dig("attributes", "vllm_max_num_seqs", "value")).to be_nil
      manifest = YAML.safe_load(File.read(app_file("multitenant-vllm", "manifest.yml")))
      expect(manifest).to include("name" => "Shared LLM (vLLM)", "subcategory" => "Share a service")
      submit = YAML.safe_load(render_submit("multitenant-vllm", context_for("multitenant-vllm")))
      expect(submit.dig("batch_connect", "conn_params")).to include("openai_base_url", "llm_model", "api_key")
    end
  end

  it "multitenant-database: logs in over TCP at the published host and port as the shared role, the password in the environment" do
    status = {}
    expect(published_args("multitenant-database", context_for("multitenant-database"), status: status)).not_to be_nil
    expect(status[:logs]["psql"]).to include("-h node1 -p 4242 -U msba_user -d msba -tAc select 1 PGPASSWORD=set")
    expect(status[:logs]["psql"]).not_to include("S3cretPw")
    mariadb = {}
    ctx = context_for("multitenant-database", "db_engine" => "mariadb")
    expect(published_args("multitenant-database", ctx, status: mariadb, engine: "mariadb")).to include("MariaDB")
    expect(mariadb[:logs]["mariadb"]).to include("--no-defaults --protocol=TCP --connect-timeout=5 -h node1 -P 4242 -u msba_user -D msba -N -e select 1 PGPASSWORD= MYSQL_PWD=set")
    expect(mariadb[:logs]["mariadb"]).not_to include("S3cretPw")
  end

  it "multitenant-database hands its password to mtshare through the environment, never its command line" do
    args = published_args("multitenant-database", context_for("multitenant-database"))
    expect(args.each_cons(2).to_a).to include(["--env", "db_password=db_password"])
    expect(args.grep(/S3cretPw/)).to eq([])
  end

  # Every user on a compute node can read every process's command line: a password variable in a job
  # template may only be set, exported, tested by the shell's own [[ ]], or printed by its printf into a pipe.
  Dir[File.join(ROOT, "ood/apps/*/template/*.erb")].sort.each do |path|
    it "#{path.delete_prefix("#{ROOT}/")} puts no secret on a command line" do
      # ${VAR:+word} gives word, never VAR's value.
      lines = File.readlines(path).map { |l| l.gsub(/\$\{\w+:\+/, "${") }.grep(/\$\{?((db_)?password|MULTITENANT_GATE_KEY|mt_key|OLLAMA_API_KEY|OPENAI_API_KEY|api_key)\b/)
      expect(lines.reject { |l| l.match?(/\A\s*(export [A-Za-z_]+=|[A-Za-z_]+=|printf '%s\\n' |if ! \[\[ )/) }).to eq([])
    end
  end

  it "the apps' shell functions put no key on a command line: only a printf into curl's stdin" do
    lines = MultiTenant::Apps::SHELL_FUNCTIONS.lines.grep(/\$\{?(mt_key|MULTITENANT_GATE_KEY)\b/).grep_v(/\A\s*#/)
    expect(lines.map(&:strip)).to eq(['if [ -n "${mt_key:-}" ]; then', %(printf 'header = "Authorization: Bearer %s"\\n' "${mt_key}" | curl --noproxy '*' -K - "$@")])
  end

  it "multitenant-content publishes the node it runs on, so the card names its host" do
    args = published_args("multitenant-content", context_for("multitenant-content"))
    expect(args.each_cons(2).to_a).to include(["--set", "host=node1"])
  end

  (SERVICES.keys + %w[multitenant-jupyter multitenant-chat]).each do |app|
    it "#{app}: its script.sh template is executable, as OOD gives the rendered script.sh the template's mode" do
      expect(File.stat(app_file(app, "template/script.sh.erb")).mode & 0o777).to eq(0o755)
      index = `git -C #{ROOT} ls-files -s -- ood/apps/#{app}/template/script.sh.erb 2>/dev/null`
      expect(index).to start_with("100755 ") unless index.empty?
    end
  end

  describe "whole jobs, run as OOD runs them (before.sh, script.sh in the background, after.sh)" do
    FAKE_OLLAMA = File.join(ROOT, "spec/ood/fake-ollama")
    NOT_PUBLISHED = /\Amultitenant: .+: not published\z/

    # PostgreSQL stand-ins: initdb makes the data dir; postgres records its arguments and the socket
    # dir's mode, then runs BODY; pg_isready answers while postgres says it is up; psql on the socket
    # sets up, over TCP it logs what a member's login would use and runs LOGIN.
    def pg_stubs(postgres:, login: "exit 0")
      here = 'here="$(dirname "$0")"'
      { "initdb" => 'mkdir -p "$2"; touch "$2/pg_hba.conf"',
        "postgres" => <<~SH,
          #{here}
          printf '%s\n' "$@" > "$here/postgres.args"
          stat -c %a "$6" > "$here/sockdir.mode"
          #{postgres}
        SH
        "pg_isready" => %(#{here}; [ -e "$here/postgres.up" ]),
        "psql" => <<~SH,
          #{here}
          case "$*" in *"-h /tmp/mtdb."*) cat >/dev/null; exit 0 ;; esac
          printf '%s\n' "$* PGPASSWORD=${PGPASSWORD:+set}" >> "$here/login.log"
          #{login}
        SH
        "createdb" => "exit 0" }
    end

    it "multitenant-database: a PostgreSQL that dies (socket path too long) is noticed at once: not published, one line, the job fails" do
      die = %(echo 'FATAL:  Unix-domain socket path "/long/.s.PGSQL.4242" is too long (maximum 107 bytes)' >&2; exit 1)
      t = Time.now
      job = run_job("multitenant-database", context_for("multitenant-database"), host: "node1", stubs: pg_stubs(postgres: die),
                                                                                 env: { "MULTITENANT_READY_SECONDS" => "30" })
      expect(Time.now - t).to be < 15
      expect(job[:args]).to be_nil, job[:out].join("\n")
      expect(job[:code]).to eq(1)
      expect(job[:out].grep(NOT_PUBLISHED)).to eq(["multitenant: PostgreSQL on node1:#{job[:files]["postgres.args"].lines[3].strip}: the server was not set up: the service ended first (its output is above): not published"]), job[:out].join("\n")
      expect(job[:out]).to include("PostgreSQL exited with status 1 before it accepted connections")
      expect(job[:out]).not_to include("connection.yml written")
    end

    it "multitenant-database: the socket is in a short private dir (0700), removed when the job ends, however long TMPDIR is" do
      job = run_job("multitenant-database", context_for("multitenant-database"), host: "node1",
                                                                                 stubs: pg_stubs(postgres: 'touch "$here/postgres.up"; exec sleep 30'),
                                                                                 env: { "TMPDIR" => File.join(Dir.tmpdir, "x" * 120) })
      expect(job[:args]).not_to be_nil, job[:out].join("\n")
      args = job[:files]["postgres.args"].lines(chomp: true)
      sock = args[args.index("-k") + 1]
      expect(sock).to match(%r{\A/tmp/mtdb\.\w{6}\z})
      expect(job[:files]["sockdir.mode"].strip).to eq("700")
      expect(args[args.index("-D") + 1]).to include("x" * 120)
      expect_gone(sock)
    end

    it "multitenant-database: publishes only after the shared role logs in over TCP at the published host and port; a failing login is not published" do
      job = run_job("multitenant-database", context_for("multitenant-database"), host: "node7",
                                                                                 stubs: pg_stubs(postgres: 'touch "$here/postgres.up"; exec sleep 30'))
      expect(job[:args]).not_to be_nil, job[:out].join("\n")
      port = job[:args].grep(/\Aport=/).first.delete_prefix("port=")
      expect(job[:files]["login.log"]).to eq("-X -w -h node7 -p #{port} -U msba_user -d msba -tAc select 1 PGPASSWORD=set\n")

      bad = run_job("multitenant-database", context_for("multitenant-database"), host: "node7",
                                                                                 stubs: pg_stubs(postgres: 'touch "$here/postgres.up"; exec sleep 30',
                                                                                                 login: "echo 'FATAL:  password authentication failed' >&2; exit 2"),
                                                                                 env: { "MULTITENANT_READY_SECONDS" => "2" })
      expect(bad[:args]).to be_nil
      expect(bad[:code]).to eq(1)
      line = bad[:out].grep(NOT_PUBLISHED)
      expect(line.size).to eq(1)
      expect(line.first).to include("msba_user could not log in to msba over TCP: not within 2 s (FATAL: password authentication failed)")
    end

    it "multitenant-llm: a pull that fails (no internet) publishes nothing, says so in one line, and the job fails" do
      ip = outward_ip
      job = run_job("multitenant-llm", context_for("multitenant-llm", "ollama_model" => "tiny:1b"), host: ip,
                                                                                            env: { "MULTITENANT_OLLAMA" => FAKE_OLLAMA, "FAKE_OLLAMA_PULL" => "fail" })
      expect(job[:args]).to be_nil
      expect(job[:code]).to eq(1)
      expect(job[:out].grep(NOT_PUBLISHED)).to eq(["multitenant: tiny:1b was not pulled: the service ended first (its output is above): not published"])
      expect(job[:out]).to include(a_string_starting_with("Error: pull model manifest"), a_string_starting_with("ollama pull tiny:1b failed"))
    end

    it "multitenant-llm: a slow pull is published only once the published URL lists the model; ollama listens on loopback, the gate on every interface" do
      ip = outward_ip
      t = Time.now
      job = run_job("multitenant-llm", context_for("multitenant-llm", "ollama_model" => %(tiny:1b<i>"&'</i>)), host: ip,
                                                                                                            env: { "MULTITENANT_OLLAMA" => FAKE_OLLAMA, "FAKE_OLLAMA_PULL" => "slow:3" })
      expect(job[:args]).not_to be_nil, job[:out].join("\n")
      expect(Time.now - t).to be >= 3
      expect(job[:out]).to include(a_string_matching(/\AListening on 127\.0\.0\.1:\d+/), a_string_matching(/\Amtshare gate: listening on 0\.0\.0\.0:\d+, forwarding to 127\.0\.0\.1:\d+/))
      expect(job[:args].each_cons(2).to_a).to include(["--set", %(ollama_model=tiny:1b<i>"&'</i>)], ["--set", a_string_matching(%r{\Aollama_url=http://#{Regexp.escape(ip)}:\d+\z})],
                                                      ["--set", a_string_matching(%r{\Aopenai_base_url=http://#{Regexp.escape(ip)}:\d+/v1\z})], ["--env", "api_key=MULTITENANT_GATE_KEY"])
      expect(job[:tags_at_publish]["models"].map { |m| m["name"] }).to eq([%(tiny:1b<i>"&'</i>)])
      expect(job[:out].grep(/multitenant:/)).to eq([])
    end

    FAKE_VLLM = File.join(ROOT, "spec/ood/fake-vllm")

    it "multitenant-vllm: a slow load is published only once the published URL lists the model; vllm listens on its private socket, without the key, the gate on every interface" do
      ip = outward_ip
      model = "org/tiny-1.5B_v2"
      Dir.mktmpdir do |rec|
        t = Time.now
        job = run_job("multitenant-vllm", context_for("multitenant-vllm", "vllm_model" => model, "vllm_max_model_len" => "4096"), host: ip,
                                                                                                                                  env: { "MULTITENANT_VLLM" => FAKE_VLLM, "FAKE_VLLM_LOAD" => "slow:3", "FAKE_VLLM_ARGS" => "#{rec}/args" })
        expect(job[:args]).not_to be_nil, job[:out].join("\n")
        expect(Time.now - t).to be >= 3
        sock = job[:out].join("\n")[%r{Starting vLLM API server on unix:(/tmp/mtvllm\.\w{6}/vllm\.sock) }, 1]
        expect(sock).not_to be_nil, job[:out].join("\n")
        expect(job[:out]).to include(a_string_matching(/\Amtshare gate: listening on 0\.0\.0\.0:\d+, forwarding to unix:#{Regexp.escape(sock)}/))
        port = job[:args].grep(/\Aport=/).first.delete_prefix("port=")
        expect(job[:args].each_cons(2).to_a).to include(["--set", "llm_model=#{model}"], ["--set", "openai_base_url=http://#{ip}:#{port}/v1"],
                                                        ["--set", "llm_engine=vllm"], ["--env", "api_key=MULTITENANT_GATE_KEY"])
        expect(job[:models_at_publish]["data"].map { |m| [m["id"], m["max_model_len"]] }).to eq([[model, 4096]])
        recorded = JSON.parse(File.read("#{rec}/args"))
        expect(recorded["argv"]).to eq(["serve", model, "--uds", sock, "--served-model-name", model, "--max-model-len", "4096"])
        expect(recorded["env"]["MULTITENANT_GATE_KEY"]).to be(false)
        # vLLM's engine sockets (ZMQ ipc://, in /tmp by default) go in the same private directory.
        expect(recorded["rpc_base"]).to eq(File.dirname(sock))
        expect(job[:out].grep(/multitenant:/)).to eq([])
        expect_gone(File.dirname(sock))
      end
    end

    it "multitenant-vllm: MULTITENANT_VLLM_LISTEN=loopback serves on 127.0.0.1 and checks nothing answers around the gate; a vLLM without --uds says which setting to use" do
      ip = outward_ip
      job = run_job("multitenant-vllm", context_for("multitenant-vllm", "vllm_model" => "org/tiny"), host: ip,
                                                                                                    env: { "MULTITENANT_VLLM" => FAKE_VLLM, "MULTITENANT_VLLM_LISTEN" => "loopback" })
      expect(job[:args]).not_to be_nil, job[:out].join("\n")
      inner = job[:out].join("\n")[/Starting vLLM API server on http:\/\/127\.0\.0\.1:(\d+)/, 1]
      expect(inner).not_to be_nil, job[:out].join("\n")
      expect(job[:out]).to include(a_string_matching(/\Amtshare gate: listening on 0\.0\.0\.0:\d+, forwarding to 127\.0\.0\.1:#{inner}/))
      after = ->(listen) { with_env("MULTITENANT_VLLM_LISTEN" => listen) { render("multitenant-vllm", "template/after.sh.erb", context_for("multitenant-vllm")) } }
      expect(after.call("loopback")).to include('mt_loopback_only "${inner_port}"')
      expect(after.call(nil)).not_to include('mt_loopback_only "${inner_port}"')

      old = run_job("multitenant-vllm", context_for("multitenant-vllm", "vllm_model" => "org/tiny"), host: ip,
                                                                                                    env: { "MULTITENANT_VLLM" => FAKE_VLLM, "FAKE_VLLM_NO_UDS" => "1" })
      expect(old[:args]).to be_nil
      expect(old[:code]).to eq(1)
      expect(old[:out]).to include(a_string_matching(/\Avllm: error: unrecognized arguments: --uds /), "vllm serve org/tiny ended with status 2 (its output is above)",
                                   "if it says --uds is not recognized, this vLLM is older than 0.9: the site sets MULTITENANT_VLLM_LISTEN=loopback in the dashboard's env, or installs a newer vLLM")
      expect(old[:out].grep(NOT_PUBLISHED).size).to eq(1)
    end

    it "multitenant-vllm: a load that fails (no internet) publishes nothing, says so in one line, and the job fails" do
      job = run_job("multitenant-vllm", context_for("multitenant-vllm", "vllm_model" => "org/tiny"), host: outward_ip,
                                                                                                    env: { "MULTITENANT_VLLM" => FAKE_VLLM, "FAKE_VLLM_LOAD" => "fail" })
      expect(job[:args]).to be_nil
      expect(job[:code]).to eq(1)
      expect(job[:out].grep(NOT_PUBLISHED)).to match([a_string_matching(/\Amultitenant: .*org\/tiny.*: the service ended first \(its output is above\): not published\z/)]), job[:out].join("\n")
      expect(job[:out]).to include(a_string_starting_with("OSError: We couldn't connect to 'https://huggingface.co'"), "vllm serve org/tiny ended with status 1 (its output is above)")
    end

    it "multitenant-dashboard: a command that serves on loopback is published behind the gate; one on every interface (around the gate) is not" do
      ip = outward_ip
      ctx = ->(cmd) { context_for("multitenant-dashboard", "app_command" => cmd) }
      good = run_job("multitenant-dashboard", ctx.call("exec python3 -m http.server --bind 127.0.0.1 \"$port\""), host: ip)
      expect(good[:args].each_cons(2).to_a).to include(["--set", a_string_matching(%r{\Aurl=http://#{Regexp.escape(ip)}:\d+/\z})], ["--env", "api_key=MULTITENANT_GATE_KEY"])
      job = run_job("multitenant-dashboard", ctx.call("exec python3 -m http.server \"$port\""), host: ip, env: { "MULTITENANT_READY_SECONDS" => "3" })
      expect(job[:args]).to be_nil
      expect(job[:code]).to eq(1)
      expect(job[:out].grep(NOT_PUBLISHED)).to match([a_string_matching(/\Amultitenant: the command's server listens on every interface: serve on 127\.0\.0\.1:\$port only .*\(port \d+ answers at #{Regexp.escape(ip)}, not only on 127\.0\.0\.1\): not published\z/)])
    end
  end

  describe "the client apps' LLM choice" do
    after { MultiTenant.instance_variable_set(:@specs, {}) }

    %w[multitenant-jupyter multitenant-chat].each do |app|
      it "#{app}: lists the LLMs shared with the user, Ollama and vLLM, each by its share's key, hostile labels included, as valid YAML" do
        nasty = %(Ollama "x": [y] #{EVIL}\u007f\u0085\uFFFE\u200B\n- ["injected", "http://evil"])
        MultiTenant.instance_variable_set(:@specs, {
          "12" => { "info" => { "user" => "alice" }, "accounting" => { "mta" => nasty }, "connection" => { "ollama_url" => "http://node1:4000", "openai_base_url" => "http://node1:4000/v1" } },
          "13" => { "info" => { "user" => "bob" }, "accounting" => { "mta" => "Ollama_API" }, "connection" => { "ollama_url" => "http://node2:4000", "openai_base_url" => "http://node2:4000/v1" } },
          "14" => { "info" => { "user" => "eve" }, "accounting" => { "mta" => "PostgreSQL" }, "connection" => { "db_name" => "x" } },
          "15" => { "info" => { "user" => "eve" }, "accounting" => { "mta" => "LLM" }, "connection" => { "openai_base_url" => "http://x/\u007f" } },
          "16" => { "info" => { "user" => "eve" }, "accounting" => { "mta" => "LLM" }, "connection" => { "openai_base_url" => "javascript:alert(1)" } },
          "16@beta" => { "info" => { "user" => "carol", "app" => "vLLM", "cluster" => "beta" }, "connection" => { "jobid" => "16", "openai_base_url" => "http://node2:8000/v1" } },
          # The first implementation's Ollama share: only ollama_url.
          "17" => { "info" => { "user" => "dave" }, "accounting" => { "mta" => "Ollama" }, "connection" => { "host" => "node3", "ollama_url" => "http://node3:4000" } }
        })
        form = YAML.safe_load(render(app, "form.yml.erb"))
        expect(form["form"]).to eq(%w[llm_share bc_num_hours])
        options = form.dig("attributes", "llm_share", "options")
        expect(options.map(&:last)).to eq(%w[12 13 16@beta 17])
        expect(options[0][0]).to start_with("alice: Ollama \"x\": [y]")
        expect(options[0][0]).not_to match(/[\u007f\u0085\uFFFE\u200B\n]/)
        expect(options[1][0]).to eq("bob: Ollama_API (job 13)")
        expect(options[2][0]).to eq("carol: vLLM (job 16 on beta)")
        expect(options[3][0]).to eq("dave: Ollama (job 17)")
      end
    end
  end

  describe "multitenant-jupyter" do
    after { MultiTenant.instance_variable_set(:@specs, {}) }

    it "says when no LLM is shared, and that the list refreshes by itself" do
      form = YAML.safe_load(render("multitenant-jupyter", "form.yml.erb"))
      expect(form.dig("attributes", "llm_share", "options")).to eq([["No shared LLM is running for you", ""]])
      expect(form.dig("attributes", "llm_share", "help")).to include("refreshes on its own within about a minute")
      expect(form.dig("attributes", "llm_share", "help")).not_to include("restart")
    end

    it "submits to MultiTenant::Apps.submit_cluster, and still renders when the gem did not load" do
      allow(MultiTenant::Apps).to receive(:submit_cluster).and_return("hpc")
      expect(YAML.safe_load(render("multitenant-jupyter", "form.yml.erb"))["cluster"]).to eq("hpc")
      hide_const("MultiTenant::Apps")
      form = with_env("MULTITENANT_SUBMIT_CLUSTER" => nil) { YAML.safe_load(render("multitenant-jupyter", "form.yml.erb")) }
      expect(form["cluster"]).to eq("cluster")
    end

    it "every app's port is one the kernel hands out (OOD's find_port only without python3)" do
      %w[multitenant-database multitenant-dashboard multitenant-jupyter multitenant-llm multitenant-vllm multitenant-chat].each do |app|
        before = render(app, "template/before.sh.erb", { "llm_share" => "", "db_engine" => "postgresql", "db_name" => "x", "vllm_model" => "m" })
        port = lambda do |path|
          # OOD's find_port, here: 1 on the node's name, 2 on loopback.
          out, = Open3.capture2({ "PATH" => path }, "/bin/bash", "-c", "find_port() { [ \"$1\" = 127.0.0.1 ] && echo 2 || echo 1; }; host=node1\n#{before.lines.take_while { |l| !l.start_with?("export port") }.join}\nprintf '%s %s' \"$port\" \"${inner_port:-}\"")
          out.split(" ")
        end
        gated = %w[multitenant-dashboard multitenant-llm multitenant-vllm multitenant-chat].include?(app)
        kernel = port.call(ENV.fetch("PATH"))
        expect(kernel.map { |p| Integer(p) }).to all(be > 2), app
        expect(kernel.size).to eq(gated ? 2 : 1), app
        expect(kernel.uniq.size).to eq(kernel.size), app
        expect(port.call("/nonexistent")).to eq(gated ? %w[1 2] : %w[1]), app
      end
    end

    it "renders job scripts bash can parse" do
      MultiTenant.instance_variable_set(:@specs, { "12" => { "connection" => { "ollama_url" => "http://node1:4000", "openai_base_url" => "http://node1:4000/v1", "api_key" => "ab" * 16 } } })
      %w[before.sh.erb script.sh.erb].each do |t|
        _, err, status = Open3.capture3("bash", "-n", stdin_data: render("multitenant-jupyter", "template/#{t}", { "llm_share" => "12" }))
        expect(status).to be_success, "#{t}: #{err}"
      end
    end

    it "exports the chosen share's URLs, key and model, quoted (Ollama: also OLLAMA_HOST); a share not running now is one line and no LLM" do
      key = "ab" * 16
      odd = "http://node3:8000/v1/$(touch$IFS/tmp/mt-pwned)'x'"
      MultiTenant.instance_variable_set(:@specs, {
        "12" => { "connection" => { "host" => "node1", "ollama_url" => "http://node1:4000", "openai_base_url" => "http://node1:4000/v1", "api_key" => key, "ollama_model" => "gpt-oss:20b" } },
        "13" => { "connection" => { "host" => "node2", "openai_base_url" => "http://node2:8000/v1", "api_key" => "cd" * 16, "llm_model" => "org/m" } },
        "14" => { "connection" => { "host" => "node3", "openai_base_url" => odd, "llm_model" => %(m"$(touch /tmp/mt-pwned)') } },
        "17" => { "connection" => { "host" => "node4", "ollama_url" => "http://node4:4000" } }
      })
      names = %w[OPENAI_BASE_URL OPENAI_API_KEY MULTITENANT_LLM_MODEL MULTITENANT_LLM_KEY OLLAMA_HOST OLLAMA_API_KEY MULTITENANT_LLM_URL]
      run = lambda do |choice|
        before = render("multitenant-jupyter", "template/before.sh.erb", { "llm_share" => choice })
        out, = Open3.capture2(names.to_h { |n| [n, nil] }, "bash", "-c", "find_port() { echo 1; }; #{before}\necho; echo @@env; env -0")
        said, env = out.split("\n@@env\n", 2)
        [said.lines(chomp: true).grep(/multitenant:/), env.split("\0").map { |l| l.split("=", 2) }.select { |n, _| names.include?(n) }.to_h]
      end
      FileUtils.rm_f("/tmp/mt-pwned")
      expect(run.call("12")).to eq([[], { "OPENAI_BASE_URL" => "http://node1:4000/v1", "OPENAI_API_KEY" => key, "MULTITENANT_LLM_KEY" => key, "MULTITENANT_LLM_MODEL" => "gpt-oss:20b",
                                          "OLLAMA_HOST" => "http://node1:4000", "OLLAMA_API_KEY" => key, "MULTITENANT_LLM_URL" => "http://node1:4000" }])
      vllm = [[], { "OPENAI_BASE_URL" => "http://node2:8000/v1", "OPENAI_API_KEY" => "cd" * 16, "MULTITENANT_LLM_KEY" => "cd" * 16, "MULTITENANT_LLM_MODEL" => "org/m" }]
      expect(run.call("13")).to eq(vllm)
      # A URL: a form of the first implementation's shape, or a value OOD cached before the upgrade.
      expect(run.call("http://node2:8000/v1")).to eq(vllm)
      expect(run.call("14")).to eq([[], { "OPENAI_BASE_URL" => odd, "MULTITENANT_LLM_MODEL" => %(m"$(touch /tmp/mt-pwned)') }])
      expect(run.call("17")).to eq([[], { "OPENAI_BASE_URL" => "http://node4:4000/v1", "MULTITENANT_LLM_MODEL" => "", "OLLAMA_HOST" => "http://node4:4000", "MULTITENANT_LLM_URL" => "http://node4:4000" }])
      expect(run.call("")).to eq([[], {}])
      ["99", "javascript:alert(1)", "http://x/$(touch /tmp/mt-pwned)"].each do |gone|
        expect(run.call(gone)).to eq([["multitenant: the chosen shared LLM is not running now: the notebook starts without it (choose a running one in the form)"], {}]), gone
      end
      expect(File.exist?("/tmp/mt-pwned")).to be(false)
    end
  end

  describe "multitenant-chat" do
    CHAT_KEY = "ab" * 16
    after { MultiTenant.instance_variable_set(:@specs, {}) if defined?(MultiTenant) }

    def shares(base = "http://node1:4000/v1", key: CHAT_KEY, model: "org/tiny")
      MultiTenant.instance_variable_set(:@specs, { "12" => { "info" => { "user" => "alice" }, "accounting" => { "mta" => "vLLM" },
                                                             "connection" => { "openai_base_url" => base, "api_key" => key, "llm_model" => model }.compact } })
    end

    it "says when no LLM is shared, and still renders when the gem did not load" do
      form = YAML.safe_load(render("multitenant-chat", "form.yml.erb"))
      expect(form.dig("attributes", "llm_share", "options")).to eq([["No shared LLM is running for you", ""]])
      expect(form.dig("attributes", "llm_share", "help")).to include("refreshes on its own within about a minute")
      hide_const("MultiTenant::Apps")
      hide_const("MultiTenant")
      form = with_env("MULTITENANT_SUBMIT_CLUSTER" => nil) { YAML.safe_load(render("multitenant-chat", "form.yml.erb")) }
      expect(form["cluster"]).to eq("cluster")
      expect(form.dig("attributes", "llm_share", "options")).to eq([["No shared LLM is running for you", ""]])
    end

    it "has a manifest under Use a shared service and submits no WCKey (it publishes nothing), with the key for its view" do
      manifest = YAML.safe_load(File.read(app_file("multitenant-chat", "manifest.yml")))
      expect(manifest).to include("name" => "Chat with a shared LLM", "category" => "Multitenant", "subcategory" => "Use a shared service", "role" => "batch_connect")
      submit = YAML.safe_load(render_submit("multitenant-chat", { "llm_share" => "" }))
      expect(submit).to eq("batch_connect" => { "template" => "basic", "conn_params" => ["password"] })
    end

    # Runs before.sh and script.sh as the job would, with a stand-in Python that records its arguments and
    # environment, and a stand-in gate that waits: {argv:, env:, out:, code:}.
    def chat_run(choice, env: {})
      Dir.mktmpdir do |dir|
        py = File.join(dir, "python")
        File.write(py, "#!/bin/sh\nprintf '%s\\n' \"$@\" > #{dir}/argv\nenv > #{dir}/env\n")
        gate = File.join(dir, "mtshare")
        File.write(gate, "#!/bin/sh\nexec sleep 5\n")
        FileUtils.chmod(0o755, [py, gate])
        before, script = with_env(env.merge("MULTITENANT_CHAT_PYTHON" => py, "MULTITENANT_PUBLISHER" => gate)) do
          %w[before script].map { |t| render("multitenant-chat", "template/#{t}.sh.erb", { "llm_share" => choice }) }
        end
        File.write(File.join(dir, "script.sh"), script)
        File.chmod(0o755, File.join(dir, "script.sh"))
        out, status = Open3.capture2e({ "OPENAI_API_KEY" => nil, "OPENAI_BASE_URL" => nil }, "bash", "-c", "export host=node1\n#{before}\n./script.sh", chdir: dir)
        read = ->(f) { File.exist?(File.join(dir, f)) ? File.read(File.join(dir, f)) : nil }
        { argv: read.call("argv")&.split("\n"), env: read.call("env")&.lines(chomp: true)&.to_h { |l| l.split("=", 2) }, out: out, code: status.exitstatus, dir: dir }
      end
    end

    it "gives the chat the chosen LLM's base URL, key and model in its environment, and no key on its command line" do
      shares
      run = chat_run("12")
      expect(run[:argv]).to eq(["./chat.py"]), run[:out]
      expect(run[:env]).to include("OPENAI_BASE_URL" => "http://node1:4000/v1", "OPENAI_API_KEY" => CHAT_KEY, "MULTITENANT_LLM_MODEL" => "org/tiny",
                                   "GRADIO_ROOT_PATH" => "/rnode/node1/#{run[:env]["port"]}")
      # Gradio serves on a socket in a private directory of the job, behind the gate on the published port.
      expect(run[:env]["MULTITENANT_CHAT_SOCKET"]).to match(%r{\A/tmp/mtchat\.\w{6}/gradio\.sock\z})
      expect(run[:env]["mt_upstream"]).to eq("unix:#{run[:env]["MULTITENANT_CHAT_SOCKET"]}")
      expect(run[:env].keys).not_to include("GRADIO_SERVER_PORT", "GRADIO_SERVER_NAME")
      # The chat's own gate key stays with the gate: Gradio is not given it.
      expect(run[:env].keys).not_to include("MULTITENANT_GATE_KEY", "password")
      expect(run[:out]).to include("Chatting with the shared LLM at http://node1:4000/v1 (org/tiny) (with the share key)")
      expect(run[:out]).not_to include(CHAT_KEY)
    end

    it "serves Gradio under the node proxy's path the dashboard uses (MULTITENANT_NODE_PROXY), as the Open button links to it" do
      shares
      expect(chat_run("12", env: { "MULTITENANT_NODE_PROXY" => "node" })[:env]["GRADIO_ROOT_PATH"]).to match(%r{\A/node/node1/\d+\z})
      expect(chat_run("12", env: { "MULTITENANT_NODE_PROXY" => "direct" })[:env]["GRADIO_ROOT_PATH"]).to eq("")
      expect(chat_run("12", env: { "MULTITENANT_NODE_PROXY" => "bogus" })[:env]["GRADIO_ROOT_PATH"]).to match(%r{\A/rnode/node1/\d+\z})
    end

    it "exports only an http(s) base URL, quoted; without one it says so in one line and the job ends" do
      made = Dir["/tmp/mtchat.*"]
      odd = "http://node1:4000/v1?c=$(touch${IFS}/tmp/mt-pwned);id&d=!x"
      shares(odd, model: %(m"$(touch /tmp/mt-pwned)'))
      FileUtils.rm_f("/tmp/mt-pwned")
      run = chat_run("12")
      expect(run[:env]).to include("OPENAI_BASE_URL" => odd, "OPENAI_API_KEY" => CHAT_KEY, "MULTITENANT_LLM_MODEL" => %(m"$(touch /tmp/mt-pwned)'))
      # A URL (a value OOD cached before the upgrade) still finds its share.
      expect(chat_run(odd)[:env]).to include("OPENAI_BASE_URL" => odd, "OPENAI_API_KEY" => CHAT_KEY)
      { "" => "no shared LLM was chosen" }.merge(["99", "javascript:alert(1)", "file:///etc/passwd", "http://x/$(touch /tmp/mt-pwned) y", "http://node9:4000/v1"].to_h { |c| [c, "the chosen shared LLM is not running now"] }).each do |bad, why|
        run = chat_run(bad)
        expect(run[:code]).to eq(1)
        expect(run[:argv]).to be_nil
        expect(run[:out].lines(chomp: true)).to eq(["multitenant: #{why}: choose a running one in the form"]), bad.inspect
      end
      expect(File.exist?("/tmp/mt-pwned")).to be(false)
      # Refused before the job's private directory is made: nothing is left in /tmp.
      expect(Dir["/tmp/mtchat.*"] - made).to eq([])
    end

    it "runs without OPENAI_API_KEY when the share carries none, and the chat says what it uses" do
      shares(key: nil, model: nil)
      run = chat_run("12")
      expect(run[:env]).to include("OPENAI_BASE_URL" => "http://node1:4000/v1", "MULTITENANT_LLM_MODEL" => "")
      expect(run[:env]).not_to have_key("OPENAI_API_KEY")
      expect(run[:out]).to include("Chatting with the shared LLM at http://node1:4000/v1\n")
    end

    def view(conn, env: {}) = with_env(env) { ERB.new(File.read(app_file("multitenant-chat", "view.html.erb")), trim_mode: "-").result(OpenStruct.new(conn).instance_eval { binding }) }

    it "view: Open posts the session's key to its gate's login through OOD's node proxy, escaped, and never puts it in a URL" do
      html = view({ "host" => "node1", "port" => "4000", "password" => CHAT_KEY })
      expect(html).to include(%(<form method="post" action="/rnode/node1/4000/?multitenant-login"), %(name="multitenant_key" value="#{CHAT_KEY}"), ">Open</button>")
      expect(html.lines.grep(/\S/).size).to eq(1)
      expect(view({ "host" => "node1", "port" => "4000", "password" => CHAT_KEY }, env: { "MULTITENANT_NODE_PROXY" => "direct" })).to include(%(action="http://node1:4000/?multitenant-login"))
      expect(view({ "host" => "node1", "port" => "4000", "password" => CHAT_KEY }, env: { "MULTITENANT_NODE_PROXY" => "node" })).to include(%(action="/node/node1/4000/?multitenant-login"))
      hostile = view({ "host" => %(node1"><script>x</script>), "port" => "4000", "password" => %("><script>y</script>) })
      expect(hostile).not_to include("<script>")
      hide_const("MultiTenant::View")
      expect(view({ "host" => "node1", "port" => "4000", "password" => %("><b>) })).to include(%(action="/rnode/node1/4000/?multitenant-login"), %(value="&quot;&gt;&lt;b&gt;"))
    end

    it "whole job with real Gradio: the member's message goes through the chat's gate to the shared vLLM's gate and back; no key, no chat" do
      python = chat_python!
      llm_key = SecureRandom.hex(16)
      llm_port, inner = 2.times.map { TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } } }
      vllm = Process.spawn(FAKE_VLLM, "serve", "org/tiny", "--host", "127.0.0.1", "--port", inner.to_s, out: File::NULL, err: File::NULL)
      gate = Process.spawn({ "MULTITENANT_GATE_KEY" => llm_key }, MultiTenant.publisher_path, "gate", "--listen", "127.0.0.1:#{llm_port}", "--upstream", "127.0.0.1:#{inner}",
                           out: File::NULL, err: File::NULL)
      base = "http://127.0.0.1:#{llm_port}/v1"
      shares(base, key: llm_key)
      job = run_job("multitenant-chat", { "llm_share" => "12" }, host: "127.0.0.1", env: { "MULTITENANT_CHAT_PYTHON" => python }, timeout: 120) do |conn, _|
        url = "http://127.0.0.1:#{conn["port"]}/"
        expect(conn["password"]).to match(/\A\h{32}\z/)
        expect(gradio_chat(url, conn["password"], "hello through two gates")).to eq("fake vllm says: hello through two gates")
        expect { gradio_chat(url, "0" * 32, "hi") }.to raise_error(/HTTP 401/)
        expect { gradio_chat(url, llm_key, "hi") }.to raise_error(/HTTP 401/)
      end
      expect(job[:timed_out]).to be(false), job[:out].join("\n")
      expect(job[:out].grep(/multitenant:/)).to eq([])
      sock = job[:out].join("\n")[%r{Uvicorn running on unix socket (/tmp/mtchat\.\w{6}/gradio\.sock)}, 1]
      expect(sock).not_to be_nil, job[:out].join("\n")
      expect_gone(File.dirname(sock))
    ensure
      [gate, vllm].compact.each { |pid| Process.kill("TERM", pid) rescue nil } # rubocop:disable Style/RescueModifier
      [gate, vllm].compact.each { |pid| Process.wait(pid) rescue nil } # rubocop:disable Style/RescueModifier
    end
  end
end
