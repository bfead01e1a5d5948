# frozen_string_literal: true

require "ostruct"
require "yaml"

# MultiTenant::Apps helpers that the app forms call in the dashboard.
RSpec.describe MultiTenant::Apps do
  around do |example|
    saved = ENV.to_h.slice("MULTITENANT_KEY_DIR", "MULTITENANT_SUBMIT_CLUSTER")
    Dir.mktmpdir do |dir|
      @keys = dir
      ENV["MULTITENANT_KEY_DIR"] = dir
      ENV.delete("MULTITENANT_SUBMIT_CLUSTER")
      example.run
    end
  ensure
    %w[MULTITENANT_KEY_DIR MULTITENANT_SUBMIT_CLUSTER].each { |k| saved.key?(k) ? ENV[k] = saved[k] : ENV.delete(k) }
  end

  describe ".group_options" do
    let(:gid) { ->(name) { Etc.getgrnam(name).gid } }

    it "offers the process's groups, primary included, that have a key, sorted; unknown gids are skipped" do
      allow(Process).to receive(:groups).and_return([gid.("sys"), gid.("daemon"), 4_242_424])
      allow(Process).to receive(:egid).and_return(gid.("bin"))
      %w[sys bin other].each { |g| File.write(File.join(@keys, "#{g}.key"), "") }
      expect(described_class.group_options).to eq([%w[bin bin], %w[sys sys]])
    end

    it "offers one empty choice that says what to do when no group of the user has a key" do
      allow(Process).to receive(:groups).and_return([gid.("daemon")])
      expect(described_class.group_options).to eq([["No group of yours has a multitenant key: ask your admin", ""]])
    end

    it "reads the key dir from MULTITENANT_KEY_DIR" do
      allow(Process).to receive(:groups).and_return([gid.("sys")])
      Dir.mktmpdir do |other|
        File.write(File.join(other, "sys.key"), "")
        ENV["MULTITENANT_KEY_DIR"] = other
        expect(described_class.group_options).to eq([%w[sys sys]])
      end
    end
  end

  describe ".submit_cluster" do
    MTFakeCluster = Struct.new(:id, :adapter, :allow, :hidden) do
      def job_config = { adapter: adapter }
      def job_allow? = allow
      def metadata = Struct.new(:hidden).new(hidden)
    end

    def clusters(*list) = stub_const("OodAppkit", Module.new.tap { |m| m.define_singleton_method(:clusters) { list } })

    it "is MULTITENANT_SUBMIT_CLUSTER when set" do
      clusters(MTFakeCluster.new(:hpc, "slurm", true, nil))
      ENV["MULTITENANT_SUBMIT_CLUSTER"] = "owens"
      expect(described_class.submit_cluster).to eq("owens")
    end

    it "else the first visible Slurm cluster the user may submit to that is not a dismiss entry" do
      ENV["MULTITENANT_SUBMIT_CLUSTER"] = ""
      clusters(MTFakeCluster.new(:k8s, "kubernetes", true, nil), MTFakeCluster.new(:aaa, "slurm", false, nil),
               MTFakeCluster.new(:hidden, "slurm", true, true), MTFakeCluster.new(:"hpc-multitenant", "slurm", true, nil),
               MTFakeCluster.new(:hpc, "slurm", true, false), MTFakeCluster.new(:zzz, "slurm", true, nil))
      expect(described_class.submit_cluster).to eq("hpc")
    end

    it "else \"cluster\", as before" do
      expect(described_class.submit_cluster).to eq("cluster")
      clusters(MTFakeCluster.new(:k8s, "kubernetes", true, nil))
      expect(described_class.submit_cluster).to eq("cluster")
    end
  end

  it ".publish takes the group from mt_group" do
    ctx = Struct.new(:mt_group, :auto_groups).new("mtclass", "other")
    expect(Shellwords.split(described_class.publish(ctx, app: "A"))[1..3]).to eq(%w[publish --group mtclass])
  end

  it ".llm_access: the share the form named by its key, whatever other share copies its URL (a URL is the publisher's text)" do
    key = "0123456789abcdef0123456789abcdef"
    url = "http://node1:4000"
    # Listed first: a share of another member, on node1 too, naming the same URLs with its own key.
    copy = { "connection" => { "host" => "node1", "openai_base_url" => "#{url}/v1", "ollama_url" => url, "api_key" => "f" * 32, "llm_model" => "evil" } }
    real = { "connection" => { "host" => "node1", "openai_base_url" => "#{url}/v1", "ollama_url" => url, "api_key" => key, "ollama_model" => "org/m" } }
    shares = { "9" => copy, "1@beta" => real }
    access = { base_url: "#{url}/v1", ollama_url: url, key: key, model: "org/m" }
    expect(described_class.llm_access("1@beta", shares)).to eq(access)
    expect(described_class.llm_access(" 1@beta ", shares)).to eq(access)
    expect(described_class.llm_access("9", shares)).to include(key: "f" * 32, model: "evil")
  end

  it ".llm_access by URL (a form of the first implementation's shape): the one share naming it in either field, on the URL's host if any; a tie gives none" do
    key = "0123456789abcdef0123456789abcdef"
    url = "http://node1:4000"
    real = { "connection" => { "host" => "node1", "openai_base_url" => "#{url}/v1", "ollama_url" => url, "api_key" => key, "llm_model" => "org/m" } }
    # Listed first, on another node: one names node1's Ollama URL as its own, one names it as its OpenAI base URL.
    forged = { "connection" => { "host" => "node9", "openai_base_url" => "#{url}/v1", "ollama_url" => url, "api_key" => "f" * 32, "llm_model" => "evil" } }
    crossed = { "connection" => { "host" => "node9", "openai_base_url" => url, "ollama_url" => "http://node9:5555", "api_key" => "e" * 32 } }
    shares = { "9" => forged, "8" => crossed, "1" => real }
    access = { base_url: "#{url}/v1", ollama_url: url, key: key, model: "org/m" }
    expect(described_class.llm_access("#{url}/v1", shares)).to eq(access)
    expect(described_class.llm_access(url, shares)).to eq(access)
    # Another share on node1 naming the same URL: no URL can say which, so none.
    twin = { "connection" => { "host" => "node1", "ollama_url" => url, "api_key" => "d" * 32 } }
    none = { base_url: "", ollama_url: "", key: nil, model: nil }
    expect(described_class.llm_access(url, shares.merge("7" => twin))).to eq(none)
    expect(described_class.llm_access("1", shares.merge("7" => twin))).to eq(access)
    # None on the URL's host: the one share naming it, else none.
    expect(described_class.llm_access(url, { "9" => forged })).to include(key: "f" * 32)
    expect(described_class.llm_access(url, { "9" => forged, "8" => crossed })).to eq(none)
  end

  it ".llm_access and MultiTenant.llm_choices take an Ollama share that publishes only ollama_url (the first implementation's), at its /v1" do
    shares = { "5" => { "info" => { "user" => "alice" }, "accounting" => { "mta" => "Ollama_API" }, "connection" => { "host" => "node1", "ollama_url" => "http://node1:4000/" } },
               "6" => { "info" => { "user" => "bob" }, "connection" => "not a hash" }, "7" => { "info" => { "user" => "eve" } } }
    expect(described_class.llm_access("5", shares)).to eq(base_url: "http://node1:4000/v1", ollama_url: "http://node1:4000/", key: nil, model: nil)
    expect(described_class.llm_access("http://node1:4000/", shares)).to include(base_url: "http://node1:4000/v1")
    %w[6 7].each { |k| expect(described_class.llm_access(k, shares)).to eq(base_url: "", ollama_url: "", key: nil, model: nil) }
    expect(MultiTenant.llm_choices(shares)).to eq([["alice: Ollama_API (job 5)", "5"]])
  end

  it "MultiTenant.llm_choices drops from labels what YAML would read as a line break (U+2028, U+2029)" do
    shares = { "5" => { "info" => { "user" => "alice", "app" => "a\u2028--- x\u2029: y" }, "connection" => { "openai_base_url" => "http://node1:4000/v1" } } }
    expect(MultiTenant.llm_choices(shares)).to eq([["alice: a--- x: y (job 5)", "5"]])
  end

  it ".llm_access gives a share's URLs as published, odd characters included, only http(s) ones, and nothing for a share not running now" do
    key = "0123456789abcdef0123456789abcdef"
    odd = "http://node1:4000/v1/a'b(c)%7e"
    shares = { "1" => { "connection" => { "openai_base_url" => odd, "llm_model" => "org/m", "api_key" => key, "ollama_url" => "#{odd}x" } },
               "2" => { "connection" => { "openai_base_url" => "http://node2:1/v1", "ollama_model" => "tiny:1b", "api_key" => "" } },
               "3" => { "connection" => { "openai_base_url" => "javascript:alert(1)", "ollama_url" => "file:///etc/passwd", "api_key" => key } } }
    expect(described_class.llm_access("1", shares)).to eq(base_url: odd, ollama_url: "#{odd}x", key: key, model: "org/m")
    expect(described_class.llm_access(" #{odd} ", shares)).to eq(base_url: odd, ollama_url: "#{odd}x", key: key, model: "org/m")
    expect(described_class.llm_access("#{odd}x", shares)).to eq(base_url: odd, ollama_url: "#{odd}x", key: key, model: "org/m")
    expect(described_class.llm_access("2", shares)).to eq(base_url: "http://node2:1/v1", ollama_url: "", key: nil, model: "tiny:1b")
    expect(described_class.llm_access("3", shares)).to include(base_url: "", ollama_url: "")
    none = { base_url: "", ollama_url: "", key: nil, model: nil }
    ["", "99", "javascript:alert(1)", "http://ended:1/v1", nil].each { |c| expect(described_class.llm_access(c, shares)).to eq(none), c.inspect }
  end

  it ".argument keeps model ids and paths as typed, and nothing that is an option, shell or YAML syntax in connection.yml" do
    ok = ["openai/gpt-oss-20b", "Qwen/Qwen2.5-7B-Instruct", "/scratch/models/llama-3.1-8b", "./m", "m_1+v=2"]
    ok.each do |m|
      expect(described_class.argument(OpenStruct.new(vllm_model: m), :vllm_model)).to eq(m)
      expect(YAML.safe_load("llm_model: #{m}")).to eq("llm_model" => m)
    end
    ["-x", "--trust-remote-code", "a b", "a\\nport: 1", "a\nb", "*a", "!a", "[a", "a'b", "@a", "a:", "`id`", "$(id)", "x" * 257, ""].each do |m|
      expect(described_class.argument(OpenStruct.new(vllm_model: m), :vllm_model)).to eq(""), m.inspect
    end
  end
end
