# frozen_string_literal: true

# The shipped OOD initializer, loaded the way the dashboard loads it: in a fresh Ruby, with OOD's
# Configuration (a stand-in: OOD itself is not installed here) and the real gem on MULTITENANT_LIB.
RSpec.describe "ood/initializers/multitenant.rb" do
  INITIALIZER = File.join(ROOT, "ood/initializers/multitenant.rb")

  def boot(env, prelude: "")
    script = <<~RUBY
      #{prelude}
      load #{INITIALIZER.inspect}
      puts "booted specs=\#{MultiTenant.specs.inspect}"
    RUBY
    Open3.capture3(env, RbConfig.ruby, "-e", script)
  end

  it "never stops the dashboard from booting when the gem is missing, and still defines MultiTenant.specs" do
    out, err, status = boot({ "MULTITENANT_LIB" => "/nonexistent" })
    expect(status).to be_success
    expect(out).to eq("booted specs={}\n")
    expect(err).to match(/\Amultitenant: not loaded \(LoadError: .*\); shares will not be discovered\n\z/)
  end

  it "boots under Rails, whose after_initialize hooks get the application as an argument, and installs live refresh" do
    prelude = <<~RUBY
      module Rails
        HOOKS = []
        Config = Struct.new(:hooks) { def after_initialize(&b) = hooks << b }
        App = Struct.new(:config)
        def self.application = (@app ||= App.new(Config.new(HOOKS)))
        def self.logger = nil
      end
      class DashboardController
        def self.before_action(&b) = (@hooks ||= []) << b
        def self.hooks = @hooks
      end
    RUBY
    script = "#{prelude}\nload #{INITIALIZER.inspect}\nRails::HOOKS.each { |h| h.call(Rails.application) }\n" \
             "puts [MultiTenant.specs, DashboardController.hooks.size].inspect"
    out, err, status = Open3.capture3({ "MULTITENANT_LIB" => File.join(ROOT, "lib"), "MULTITENANT_SLURM_BIN" => "/nonexistent" },
                                      RbConfig.ruby, "-e", script)
    expect(status).to be_success, err
    expect(out).to eq("[{}, 1]\n")
  end

  it "does nothing when disabled" do
    out, err, status = boot({ "MULTITENANT_LIB" => File.join(ROOT, "lib"), "MULTITENANT_ENABLED" => "0" })
    expect([status.success?, out, err]).to eq([true, "booted specs={}\n", ""])
  end

  it "survives bad settings with one line" do
    out, err, status = boot({ "MULTITENANT_LIB" => File.join(ROOT, "lib"), "MULTITENANT_TIMEOUT" => "soon" })
    expect([status.success?, out]).to eq([true, "booted specs={}\n"])
    expect(err).to eq("multitenant: discovery skipped: MultiTenant::InputError: MULTITENANT_TIMEOUT=\"soon\": invalid value for Float(): \"soon\"\n")
  end

  it "leaves discovery off with one line when a switch is not an explicit true or false" do
    # Discovery itself stubbed: it says whether it ran, and with which legacy setting.
    prelude = "$LOAD_PATH.unshift(#{File.join(ROOT, "lib").inspect}); require 'multitenant'\n" \
              "module MultiTenant; def self.discover(config:, **) = puts(\"discovered legacy=\#{config.legacy}\"); end"
    env = { "MULTITENANT_LIB" => File.join(ROOT, "lib"), "MULTITENANT_SLURM_BIN" => "/nonexistent" }
    out, err, status = boot(env.merge("MULTITENANT_LEGACY" => " OFF "), prelude: prelude)
    expect([status.success?, out, err]).to eq([true, "discovered legacy=false\nbooted specs={}\n", ""])
    { "MULTITENANT_LEGACY" => "disabled", "MULTITENANT_ENABLED" => "enabled", "MULTITENANT_CARDS" => "" }.each do |var, v|
      out, err, status = boot(env.merge(var => v), prelude: prelude)
      expect([status.success?, out]).to eq([true, "booted specs={}\n"])
      expect(err).to eq("multitenant: discovery skipped: MultiTenant::InputError: #{var}=#{v.inspect}: " \
                        "must be true or false (also yes/no, on/off, 1/0)\n")
    end
  end

  context "on the real cluster", :cluster do
    before { require_cluster! }
    after { cancel_jobs }

    it "discovers once at boot, into OOD's data root" do
      id = submit_share(owner: "mtowner", args: ["--set", "ollama_url=http://node1:4000"])
      root = dataroot_for("mtmember")
      prelude = <<~RUBY
        module Configuration
          def self.dataroot = #{root.inspect}
          def self.per_cluster_dataroot? = false
        end
      RUBY
      script = "#{prelude}\nload #{INITIALIZER.inspect}\nputs MultiTenant.llm_options.inspect"
      out, err, status = run_as("mtmember", RbConfig.ruby, "-e", script,
                                env: { "MULTITENANT_LIB" => File.join(ROOT, "lib"), "MULTITENANT_KEY_DIR" => key_dir,
                                       "MULTITENANT_CLUSTERS" => "mtcluster=ood_mt", "OOD_CLUSTERS" => clusters_dir })
      expect(status).to be_success, err
      expect(out).to eq(%([["mtowner: Ollama_API (job #{id})", "http://node1:4000"]]\n))
      expect(Dir[File.join(root, "batch_connect/db/*")].size).to eq(1)
    end
  end
end

RSpec.describe "MultiTenant form helpers" do
  let(:specs) do
    { "12" => { "info" => { "user" => "alice" }, "accounting" => { "mta" => "Ollama_API" }, "connection" => { "ollama_url" => "http://n1:4000" } },
      "13" => { "info" => { "user" => "bob" }, "accounting" => { "mta" => "PostgreSQL" }, "connection" => { "db_url" => "x" } } }
  end

  it "lists the shares carrying a value as select options" do
    expect(MultiTenant.llm_options(specs)).to eq([["alice: Ollama_API (job 12)", "http://n1:4000"]])
    expect(MultiTenant.options_for(:db_url, specs)).to eq([["bob: PostgreSQL (job 13)", "x"]])
    expect(MultiTenant.options_for("none", specs)).to eq([])
  end

  it "names the cluster in the label when several clusters are searched (keys <job id>@<cluster>)" do
    multi = { "12@beta" => { "info" => { "user" => "alice", "cluster" => "beta" }, "accounting" => { "mta" => "Ollama_API" },
                             "connection" => { "jobid" => "12", "ollama_url" => "http://n1:4000" } } }
    expect(MultiTenant.llm_options(multi)).to eq([["alice: Ollama_API (job 12 on beta)", "http://n1:4000"]])
  end
end
