# frozen_string_literal: true

# The vectors in docs/vectors/ are shared with the Rust tests.
RSpec.describe "test vectors" do
  ERRORS = {
    "bad_seal" => MultiTenant::SealError, "unknown_key" => MultiTenant::UnknownKeyError,
    "malformed" => MultiTenant::FormatError, "unsupported_version" => MultiTenant::VersionError,
    "legacy_disabled" => MultiTenant::LegacyError, "invalid" => MultiTenant::InputError
  }.freeze

  it "has them all" do
    expect(vectors.size).to be >= 48
  end

  SpecHelpers.instance_method(:vectors).bind(Object.new.extend(SpecHelpers)).call.each do |file, v|
    it "#{file}: #{v["description"]}" do
      keys = v["keys"].map { |line| MultiTenant::Key.from_line(line) }
      # The frozen v1 and legacy vectors name no cluster nor restart count.
      open = lambda do
        MultiTenant::Envelope.open(v["name"], keys: keys, job_id: v["job_id"], owner: v["owner"], cluster: v["cluster"],
                                              restarts: v["restarts"], legacy: v["legacy"])
      end
      if v["expect"] == "ok"
        expect(open.call["message"]).to eq(v["message"])
      else
        expect { open.call }.to raise_error(ERRORS.fetch(v["expect"]))
      end
    end
  end
end
