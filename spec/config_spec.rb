# frozen_string_literal: true

# The on/off switches take only explicit words: MULTITENANT_LEGACY turns on an insecure decoder, so a
# value like "disabled" must never read as "on".
RSpec.describe MultiTenant::Config do
  switch_vars = { enabled: "MULTITENANT_ENABLED", legacy: "MULTITENANT_LEGACY", cards: "MULTITENANT_CARDS" }
  on = ["true", "TRUE", "True", "yes", "YES", "on", "On", "1", " 1 ", "yes\n", "\ttrue"]
  off = ["false", "FALSE", "no", "No", "off", "OFF", "0", " 0", "off\n"]
  refused = ["disabled", "enabled", "2", "", " ", "tru", "y", "n", "none", "-1", "01", "true false", "on;", "ja"]

  it "reads every accepted spelling of each switch, in any case and with spaces around" do
    switch_vars.each do |key, var|
      on.each { |v| expect(described_class.from_env(var => v).public_send(key)).to be(true), "#{var}=#{v.inspect}" }
      off.each { |v| expect(described_class.from_env(var => v).public_send(key)).to be(false), "#{var}=#{v.inspect}" }
    end
  end

  it "refuses anything else with one line naming the variable, the value and the accepted words" do
    switch_vars.each_value do |var|
      refused.each do |v|
        expect { described_class.from_env(var => v) }
          .to raise_error(MultiTenant::InputError, "#{var}=#{v.inspect}: must be true or false (also yes/no, on/off, 1/0)")
      end
    end
    expect { described_class.from_env("MULTITENANT_LEGACY" => "disabled") }
      .to raise_error(MultiTenant::InputError, 'MULTITENANT_LEGACY="disabled": must be true or false (also yes/no, on/off, 1/0)')
  end

  it "never turns legacy decoding on from a value it does not know" do
    refused.each do |v|
      config = begin
        described_class.from_env("MULTITENANT_LEGACY" => v)
      rescue MultiTenant::InputError
        nil
      end
      expect(config).to be_nil
      expect { described_class.new(legacy: v) }.to raise_error(MultiTenant::InputError)
    end
    expect(described_class.from_env({}).legacy).to be(false)
  end

  it "keeps the defaults when a switch is not set, and other empty settings still mean the default" do
    config = described_class.from_env("MULTITENANT_WCKEY" => " ", "MULTITENANT_TIMEOUT" => "")
    expect([config.enabled, config.legacy, config.cards, config.wckey, config.timeout]).to eq([true, false, true, "multitenant", 5.0])
  end

  it "gives Ruby callers real booleans, or refuses" do
    expect(described_class.new(legacy: "yes", cards: "off", enabled: " ON ").then { |c| [c.legacy, c.cards, c.enabled] })
      .to eq([true, false, true])
    # 0 is true in Ruby: as a switch it says off.
    expect(described_class.new(legacy: 0, cards: 1).then { |c| [c.legacy, c.cards] }).to eq([false, true])
    expect(described_class.new(legacy: true, cards: false).then { |c| [c.legacy, c.cards] }).to eq([true, false])
    [nil, "disabled", :yes, 2, 1.0, [], "tru"].each do |v|
      expect { described_class.new(legacy: v) }
        .to raise_error(MultiTenant::InputError, "MULTITENANT_LEGACY=#{v.inspect}: must be true or false (also yes/no, on/off, 1/0)")
    end
  end

  describe "MULTITENANT_HOST_DOMAINS" do
    rule = "each domain must be a DNS name: labels of letters, digits and '-' separated by '.' (cluster.example.edu)"

    it "reads the cluster domains, lowercase, and passes them to the native discovery; not set, the resolver's" do
      config = described_class.from_env("MULTITENANT_HOST_DOMAINS" => " Cluster.Example.EDU, ib.example.edu ,cluster.example.edu")
      expect(config.host_domains).to eq(%w[cluster.example.edu ib.example.edu])
      expect(config.native(dataroot: nil, per_cluster: false)["host_domains"]).to eq(%w[cluster.example.edu ib.example.edu])
      expect(described_class.new(host_domains: ["a-1.example.edu"]).host_domains).to eq(["a-1.example.edu"])
      # Not set (or blank): nil, and the native side reads /etc/resolv.conf's search and domain entries.
      [{}, { "MULTITENANT_HOST_DOMAINS" => " " }].each do |env|
        config = described_class.from_env(env)
        expect(config.host_domains).to be_nil
        expect(config.native(dataroot: nil, per_cluster: false)).to include("host_domains" => nil)
      end
    end

    it "refuses what is not a DNS name with one line naming the variable" do
      { "evil.example.com/x" => "evil.example.com/x", "a,,b" => "", "a.edu," => "", "a..b" => "a..b", ".a" => ".a",
        "a." => "a.", "a_b.edu" => "a_b.edu", "a b.edu" => "a b.edu", "*.edu" => "*.edu", "é.edu" => "é.edu",
        "#{"a" * 64}.edu" => "#{"a" * 64}.edu", "a.edu\nb.edu" => "a.edu\nb.edu" }.each do |value, bad|
        expect { described_class.from_env("MULTITENANT_HOST_DOMAINS" => value) }
          .to raise_error(MultiTenant::InputError, "MULTITENANT_HOST_DOMAINS=#{value.inspect}: #{rule}, not #{bad.inspect}")
      end
      expect { described_class.new(host_domains: []) }
        .to raise_error(MultiTenant::InputError, "MULTITENANT_HOST_DOMAINS=[]: #{rule}, not []")
      expect(described_class.new(host_domains: "#{"a" * 63}.edu").host_domains).to eq(["#{"a" * 63}.edu"])
    end
  end
end
