# frozen_string_literal: true

require "ostruct"
require "yaml"

# The service and client apps' templates, rendered as OOD renders them: form.yml.erb at top level,
# submit.yml.erb and template/*.sh.erb with the session context.
RSpec.describe "service and client app templates" do
  SERVICES = {
    "multitenant-llm" => { "ollama_model" => "gpt-oss:20b" },
    "multitenant-database" => { "db_engine" => "postgresql", "db_name" => "msba" },
    "multitenant-dashboard" => { "app_title" => "Lab dashboard", "app_command" => "python3 -m http.server $port" },
    "multitenant-content" => { "content_title" => "Week 3", "content_format" => "markdown", "content" => "# Read\n\n* chapter 3" }
  }.freeze
  EVIL = %(x"; touch /tmp/mt-pwned; echo '$(id)' `id` \\)

  def app_file(app, path) = File.join(ROOT, "ood/apps", app, path)
  def render(app, path, context = nil) = ERB.new(File.read(app_file(app, path))).result(context ? binding_for(context) : TOPLEVEL_BINDING)

  def binding_for(context)
    ctx = OpenStruct.new(context)
    ctx.instance_eval { |c| c.instance_variable_set(:@context, c) }
    Class.new { def initialize(c) = (@c = c); def context = @c; def b = binding }.new(ctx).b
  end

  def context_for(app, extra = {})
    { "mt_group" => "mtclass", "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default",
      "mt_expires_hours" => "", "bc_num_hours" => "8" }.merge(SERVICES.fetch(app, {})).merge(extra)
  end

  # Runs the rendered after.sh with a publisher that records its arguments, one per line, or nil when
  # it did not run; port_opens: false makes OOD's wait_until_port_used time out.
  def published_args(app, context, port_opens: true, output: [])
    Dir.mktmpdir do |dir|
      fake = File.join(dir, "mtshare")
      File.write(fake, "#!/bin/sh\nprintf '%s\\n' \"$@\" > #{dir}/args\n")
      File.chmod(0o755, fake)
      script = <<~SH
        wait_until_port_used() { #{port_opens ? "return 0" : "return 1"}; }
        host=node1 port=4242 ollama_url=http://node1:4242 ollama_model=m url=http://node1:4242/ db_dir=#{dir}
        #{port_opens ? 'touch "$db_dir/ready"' : ""}
        db_engine=postgresql db_name=msba db_user=msba_user db_password=S3cretPw jdbc_url=jdbc:postgresql://node1:4242/msba
        content_format=markdown content_file=#{dir}/content
        echo '# hi' > "$content_file"
        #{ClimateControl.env("MULTITENANT_PUBLISHER" => fake) { render(app, "template/after.sh.erb", context) }}
        echo "job script goes on"
      SH
      out, err, status = Open3.capture3("bash", "-c", script, chdir: dir)
      raise err unless status.success?

      output.replace(out.lines(chomp: true))
      File.exist?(File.join(dir, "args")) ? File.read(File.join(dir, "args")).split("\n") : nil
    end
  end

  module ClimateControl
    def self.env(vars)
      old = vars.to_h { |k, _| [k, ENV[k]] }
      vars.each { |k, v| ENV[k] = v }
      yield
    ensure
      old.each { |k, v| ENV[k] = v }
    end
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
        submit = YAML.safe_load(render(app, "submit.yml.erb", context_for(app)))
        expect(submit.dig("batch_connect", "template")).to eq("basic")
        expect(submit.dig("script", "native")).to eq(["--wckey=multitenant"])
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
        expect(after).not_to match(/openssl|gzip|base64/)
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
        form = ClimateControl.env("MULTITENANT_SUBMIT_CLUSTER" => nil) { YAML.safe_load(render(app, "form.yml.erb")) }
        expect(form["cluster"]).to eq("cluster")
        expect(form.dig("attributes", "mt_group", "options")).to eq([["No group of yours has a multitenant key: ask your admin", ""]])
        form = ClimateControl.env("MULTITENANT_SUBMIT_CLUSTER" => "hpc") { YAML.safe_load(render(app, "form.yml.erb")) }
        expect(form["cluster"]).to eq("hpc")
      end
    end
  end

  %w[multitenant-llm multitenant-database multitenant-dashboard].each do |app|
    it "#{app}: publishes nothing when the service never opens its port, says so, and the job script goes on" do
      out = []
      expect(published_args(app, context_for(app), port_opens: false, output: out)).to be_nil
      expect(out.grep(/\Amultitenant: .+: not published\z/).size).to eq(1)
      expect(out.last).to eq("job script goes on")
    end
  end

  it "multitenant-database hands its password to mtshare through the environment, never its command line" do
    args = published_args("multitenant-database", context_for("multitenant-database"))
    expect(args.each_cons(2).to_a).to include(["--env", "db_password=db_password"])
    expect(args.grep(/S3cretPw/)).to eq([])
  end

  # Every user on a compute node can read every process's command line: a password variable in a job
  # template may only be set, exported, or printed by the shell's own printf into a pipe.
  Dir[File.join(ROOT, "ood/apps/*/template/*.erb")].sort.each do |path|
    it "#{path.delete_prefix("#{ROOT}/")} puts no secret on a command line" do
      lines = File.readlines(path).grep(/\$\{?(db_)?password\b/)
      expect(lines.reject { |l| l.match?(/\A\s*(export [A-Za-z_]+=|[A-Za-z_]+=|printf '%s\\n' )/) }).to eq([])
    end
  end

  it "multitenant-content publishes the node it runs on, so the card names its host" do
    args = published_args("multitenant-content", context_for("multitenant-content"))
    expect(args.each_cons(2).to_a).to include(["--set", "host=node1"])
  end

  (SERVICES.keys + ["multitenant-jupyter"]).each do |app|
    it "#{app}: its script.sh template is executable, as OOD gives the rendered script.sh the template's mode" do
      expect(File.stat(app_file(app, "template/script.sh.erb")).mode & 0o777).to eq(0o755)
      index = `git -C #{ROOT} ls-files -s -- ood/apps/#{app}/template/script.sh.erb 2>/dev/null`
      expect(index).to start_with("100755 ") unless index.empty?
    end
  end

  describe "multitenant-jupyter" do
    after { MultiTenant.instance_variable_set(:@specs, {}) }

    it "lists the LLMs shared with the user, hostile labels and URLs included, as valid YAML" do
      nasty = %(Ollama "x": [y] #{EVIL}\u007f\u0085\uFFFE\u200B\n- ["injected", "http://evil"])
      MultiTenant.instance_variable_set(:@specs, {
        "12" => { "info" => { "user" => "alice" }, "accounting" => { "mta" => nasty }, "connection" => { "ollama_url" => "http://node1:4000" } },
        "13" => { "info" => { "user" => "bob" }, "accounting" => { "mta" => "PostgreSQL" }, "connection" => { "db_name" => "x" } },
        "14" => { "info" => { "user" => "eve" }, "accounting" => { "mta" => "LLM" }, "connection" => { "ollama_url" => "http://x/\u007f" } },
        "15" => { "info" => { "user" => "eve" }, "accounting" => { "mta" => "LLM" }, "connection" => { "ollama_url" => "javascript:alert(1)" } }
      })
      form = YAML.safe_load(render("multitenant-jupyter", "form.yml.erb"))
      options = form.dig("attributes", "ollama_host", "options")
      expect(options.size).to eq(1)
      expect(options[0][0]).to start_with("alice: Ollama \"x\": [y]")
      expect(options[0][0]).not_to match(/[\u007f\u0085\uFFFE\u200B\n]/)
      expect(options[0][1]).to eq("http://node1:4000")
    end

    it "says when no LLM is shared, and that the list refreshes by itself" do
      form = YAML.safe_load(render("multitenant-jupyter", "form.yml.erb"))
      expect(form.dig("attributes", "ollama_host", "options")).to eq([["No shared LLM is running for you", ""]])
      expect(form.dig("attributes", "ollama_host", "help")).to include("refreshes on its own within about a minute")
      expect(form.dig("attributes", "ollama_host", "help")).not_to include("restart")
    end

    it "submits to MultiTenant::Apps.submit_cluster, and still renders when the gem did not load" do
      allow(MultiTenant::Apps).to receive(:submit_cluster).and_return("hpc")
      expect(YAML.safe_load(render("multitenant-jupyter", "form.yml.erb"))["cluster"]).to eq("hpc")
      hide_const("MultiTenant::Apps")
      form = ClimateControl.env("MULTITENANT_SUBMIT_CLUSTER" => nil) { YAML.safe_load(render("multitenant-jupyter", "form.yml.erb")) }
      expect(form["cluster"]).to eq("cluster")
    end

    it "exports only an http(s) URL as OLLAMA_HOST, quoted" do
      run = lambda do |host|
        before = render("multitenant-jupyter", "template/before.sh.erb", { "ollama_host" => host })
        out, = Open3.capture2("bash", "-c", "find_port() { echo 1; }; #{before}\nprintf %s \"$OLLAMA_HOST\"")
        out
      end
      expect(run.call("http://node1:4000")).to eq("http://node1:4000")
      expect(run.call("javascript:alert(1)")).to eq("")
      expect(run.call("http://x/$(touch /tmp/mt-pwned)")).to eq("")
      expect(File.exist?("/tmp/mt-pwned")).to be(false)
    end
  end
end
