# frozen_string_literal: true

RSpec.describe MultiTenant::Refresh do
  after do
    described_class.instance_variable_set(:@last, nil)
    described_class.instance_variable_set(:@args, nil)
  end

  it "hooks the controllers this OOD has and skips those it lacks" do
    stub_const("DashboardController", Class.new do
      def self.before_action(&block) = (@hooks ||= []) << block
      def self.hooks = @hooks
    end)
    expect(described_class.install).to eq(["DashboardController"])
    expect(DashboardController.hooks.size).to eq(1)
    expect(described_class.install(controllers: ["No::Such::Controller"])).to eq([])
  end

  it "re-runs discovery at most once per TTL, with the boot settings" do
    calls = []
    allow(MultiTenant).to receive(:discover) { |**args| calls << args }
    described_class.configure(now: 100.0, dataroot: "/d", per_cluster: true)
    expect(described_class.maybe_run(now: 130.0)).to be(false)
    expect(described_class.maybe_run(now: 161.0)).to be(true)
    expect(described_class.maybe_run(now: 200.0)).to be(false)
    expect(calls).to eq([{ dataroot: "/d", per_cluster: true }])
  end

  it "does nothing before the boot-time discovery ran, as when multitenant is disabled" do
    allow(MultiTenant).to receive(:discover)
    expect(described_class.maybe_run(now: 1e9)).to be(false)
    expect(MultiTenant).not_to have_received(:discover)
  end

  it "keeps the TTL between 5 seconds and an hour" do
    { "0" => 5.0, "-3" => 5.0, "1e400" => 3600.0, "soon" => 60.0, "90" => 90.0 }.each do |raw, want|
      ENV["MULTITENANT_TTL"] = raw
      expect(described_class.ttl).to eq(want)
    ensure
      ENV.delete("MULTITENANT_TTL")
    end
  end

  it "never raises into the request" do
    described_class.configure(now: 0.0)
    allow(MultiTenant).to receive(:discover).and_raise(NoMemoryError, "boom")
    allow(MultiTenant).to receive(:log)
    expect(described_class.maybe_run(now: 1e9)).to be(false)
    expect(MultiTenant).to have_received(:log).with("refresh failed: boom")
  end
end

RSpec.describe MultiTenant::Refresh, "before every request" do
  after do
    described_class.instance_variable_set(:@last, nil)
    described_class.instance_variable_set(:@args, nil)
  end

  it "settles cards OOD marked completed on every request, and discovers only once per TTL" do
    settled = []
    allow(MultiTenant::Discovery).to receive(:_settle_completed) { |root, uid| settled << [root, uid] and [] }
    allow(MultiTenant).to receive(:discover)
    described_class.configure(now: 100.0, dataroot: "/d", per_cluster: false)
    3.times { |i| described_class.maybe_run(now: 101.0 + i) }
    expect(settled).to eq([["/d", Process.uid]] * 3)
    expect(MultiTenant).not_to have_received(:discover)
  end

  it "has OOD render cached app forms again once the shares changed, and only then" do
    cache = Class.new { attr_reader :cleared; def delete_matched(re) = (@cleared ||= []) << re }.new
    stub_const("Rails", Module.new.tap { |m| m.define_singleton_method(:cache) { cache } })
    allow(MultiTenant::Discovery).to receive(:_settle_completed).and_return([])
    shares = [{}, { "12" => { "connection" => { "ollama_url" => "http://n:1" } } }]
    allow(MultiTenant).to receive(:discover) { MultiTenant.instance_variable_set(:@specs, shares.shift || shares.last) }
    MultiTenant.instance_variable_set(:@specs, {})
    described_class.configure(now: 0.0, dataroot: "/d")
    described_class.maybe_run(now: 100.0)
    expect(cache.cleared).to be_nil
    described_class.maybe_run(now: 200.0)
    expect(cache.cleared).to eq([%r{\Abatch_connect_app/}])
  ensure
    MultiTenant.instance_variable_set(:@specs, {})
  end
end
