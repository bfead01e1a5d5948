# frozen_string_literal: true

RSpec.describe MultiTenant::Envelope do
  let(:key) { MultiTenant::Key.generate }
  let(:message) do
    { "session_id" => "0f8fad5b-d9cb-469f-a165-70867728950e", "app" => "Ollama_API", "method" => "card",
      "delivery" => "sys/multitenant-delivery_default",
      "connection" => { "host" => "node017", "ollama_url" => "http://node017:41234",
                        "note" => "spaces, 'quotes', \"double\", a|pipe, ünïcödé, <script>x</script>" },
      "allow" => %w[bob 1002], "expires_at" => 1_900_000_000 }
  end
  let(:job) { { job_id: 4242, owner: "alice", cluster: "alpha" } }

  def seal(msg = message, **kw)
    described_class.seal(msg, key: key, group: "class101", **job, **kw)
  end

  it "round-trips every value through the native seal" do
    name = seal
    share = described_class.open(name, keys: [key], **job)
    expect(share["message"]).to eq(message)
    expect(share).to include("prefix" => "mt", "group" => "class101", "version" => "2", "key_id" => key.id,
                              "size" => name.size)
    expect(name).to match(/\Amt\|class101\|2\.[A-Za-z0-9_-]+\z/)
  end

  it "accepts symbol keys and a custom prefix" do
    name = seal({ session_id: "s1", app: "A", method: :form, delivery: "sys/d", connection: { x: "1" } }, prefix: "ollama")
    share = described_class.open(name, keys: key, **job)
    expect(share["prefix"]).to eq("ollama")
    expect(share["message"]).to include("method" => "form", "connection" => { "x" => "1" }, "allow" => nil)
  end

  it "parses a name without a key" do
    expect(described_class.parse(seal)).to eq("prefix" => "mt", "group" => "class101", "version" => "2",
                                              "key_id" => key.id, "size" => seal.size)
  end

  it "raises a MultiTenant error of the right class for each failure" do
    name = seal
    expect { described_class.open(name, keys: [key], **job, job_id: 4243) }
      .to raise_error(MultiTenant::SealError, /seal does not/)
    expect { described_class.open(name, keys: [key], **job, owner: "mallory") }.to raise_error(MultiTenant::SealError)
    expect { described_class.open(name, keys: [MultiTenant::Key.generate], **job) }
      .to raise_error(MultiTenant::UnknownKeyError, /no key with id #{key.id} for group class101/)
    expect { described_class.open("mt|g|9.AAAA", keys: [key], **job) }.to raise_error(MultiTenant::VersionError)
    expect { described_class.open("garbage", keys: [key], **job) }.to raise_error(MultiTenant::FormatError)
    expect { seal(message.merge("method" => "both")) }.to raise_error(MultiTenant::InputError, /"both"/)
    expect { seal(message.merge("connection" => { "Bad-Key" => "v" })) }.to raise_error(MultiTenant::InputError, /Bad-Key/)
    expect { seal(message.merge("session_id" => "../../x")) }.to raise_error(MultiTenant::InputError, /session id/)
    expect { seal({ "app" => 1 }) }.to raise_error(MultiTenant::InputError)
    expect(MultiTenant::VersionError.ancestors).to include(MultiTenant::FormatError, MultiTenant::Error)
  end

  it "binds a name to the cluster and run it was sealed for" do
    name = seal(restarts: 2)
    expect(described_class.open(name, keys: [key], **job, restarts: 2)["message"]).to eq(message)
    expect(described_class.open(name, keys: [key], **job, restarts: "2")["message"]).to eq(message)
    [{ restarts: 0 }, { restarts: 3 }, { cluster: "beta" }].each do |other|
      expect { described_class.open(name, keys: [key], **job, **other) }.to raise_error(MultiTenant::SealError), other.inspect
    end
    expect { described_class.open(name, keys: [key], job_id: 4242, owner: "alice", restarts: 2) }
      .to raise_error(MultiTenant::InputError, /cluster/)
    [-1, 2**32, "x", 1.5].each do |bad|
      expect { described_class.open(name, keys: [key], **job, restarts: bad) }.to raise_error(MultiTenant::InputError, /restarts/)
    end
    expect { seal(cluster: nil) }.to raise_error(MultiTenant::InputError, /cluster/)
    expect { seal(cluster: "a|b") }.to raise_error(MultiTenant::InputError, /cluster name/)
    first = seal
    expect(described_class.open(first, keys: [key], **job, restarts: nil)["version"]).to eq("2")
  end

  it "still opens v1 names, whatever cluster and run it is given" do
    v = JSON.parse(File.read(File.join(ROOT, "docs/vectors/v1-ollama.json")))
    keys = v["keys"].map { |l| MultiTenant::Key.from_line(l) }
    [{}, { cluster: "beta", restarts: 9 }].each do |run|
      share = described_class.open(v["name"], keys: keys, job_id: v["job_id"], owner: v["owner"], **run)
      expect(share).to include("version" => "1", "message" => v["message"])
    end
    expect(described_class.parse(v["name"])["version"]).to eq("1")
  end

  it "refuses names over 1024 characters with the size and what to trim" do
    big = message.merge("connection" => (1..40).to_h { |i| ["k#{i}", Random.new(i).bytes(30).unpack1("H*")] })
    expect { seal(big) }.to raise_error(MultiTenant::TooLargeError,
                                        /would be (\d{4}) characters, over Slurm's 1024-character job-name limit: trim about \d+ characters/)
  end

  it "raises (never aborts Ruby) on input far over the limit" do
    huge = message.merge("connection" => (1..80).to_h { |i| ["k#{i}", Random.new(i).bytes(500).unpack1("H*")] })
    expect { seal(huge) }.to raise_error(MultiTenant::TooLargeError)
    expect { described_class.open(seal + "A" * 93_000, keys: [key], **job) }.to raise_error(MultiTenant::FormatError, /over Slurm's 1024/)
  end

  it "keeps a key's secret out of inspect" do
    expect(key.inspect).to eq("#<MultiTenant::Key #{key.id}>")
    expect(key.inspect).not_to include(key.to_line.split(":").last)
    expect(MultiTenant::Key.from_line(key.to_line)).to eq(key)
    expect { MultiTenant::Key.from_line("mtk1:00:zz") }.to raise_error(MultiTenant::InputError, /key line/)
  end
end
