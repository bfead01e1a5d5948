# frozen_string_literal: true

RSpec.describe MultiTenant do
  it "loads the native library" do
    expect(described_class.load_error).to be_nil
    expect(described_class).to be_native
  end

  it "is defined, says why once and has empty specs when the native library cannot load" do
    shared_tmpdir do |dir|
      FileUtils.cp_r(File.join(ROOT, "lib"), dir)
      File.write(File.join(dir, "lib/multitenant/multitenant.so"), "not an ELF file")
      script = <<~RUBY
        require "multitenant"
        require "multitenant"
        p [MultiTenant.specs, MultiTenant.native?]
        begin
          MultiTenant::Envelope.parse("mt|g|1.x")
        rescue MultiTenant::NativeError => e
          puts e.class
        end
      RUBY
      out, err, status = Open3.capture3(RbConfig.ruby, "-I", File.join(dir, "lib"), "-e", script)
      expect(status).to be_success
      expect(out.lines.map(&:chomp)).to eq(["[{}, false]", "MultiTenant::NativeError"])
      expect(err.lines.size).to eq(1)
      expect(err).to match(/\Amultitenant: native library not loaded \(.*multitenant\.so.*\); MultiTenant.specs stays empty\n\z/)
    end
  end
end
