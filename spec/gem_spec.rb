# frozen_string_literal: true

# The release path an admin takes: build the gem, install it with no network and no cargo cache.
RSpec.describe "the gem" do
  it "builds, installs offline and loads" do
    shared_tmpdir do |dir|
      out, status = Open3.capture2e("rake", "gem", chdir: ROOT)
      expect(status).to be_success, out
      gem_file = Dir[File.join(ROOT, "pkg/multitenant-#{MultiTenant::VERSION}.gem")].first
      env = { "CARGO_HOME" => File.join(dir, "empty-cargo-home"), "CARGO_NET_OFFLINE" => "true", "GEM_HOME" => File.join(dir, "gems") }
      out, status = Open3.capture2e(env, "gem", "install", "--local", "--no-document", "--install-dir", env["GEM_HOME"], gem_file)
      expect(status).to be_success, out
      gem_dir = File.join(env["GEM_HOME"], "gems/multitenant-#{MultiTenant::VERSION}")
      expect(Dir.exist?(File.join(gem_dir, "target"))).to be(false)
      installed = Dir.glob(File.join(gem_dir, "**/*"), File::FNM_DOTMATCH).select { |f| File.file?(f) }.sum { |f| File.size(f) }
      expect(installed).to be < 8 * 1024 * 1024
      check = <<~RUBY
        gem "multitenant"
        require "multitenant"
        k = MultiTenant::Key.generate
        n = MultiTenant::Envelope.seal({app: "A", session_id: "s", method: "card", delivery: "sys/d"}, key: k, group: "g", job_id: 1, owner: "u", cluster: "c")
        puts MultiTenant::Envelope.open(n, keys: [k], job_id: 1, owner: "u", cluster: "c")["message"]["app"], MultiTenant.publisher_path
      RUBY
      out, status = Open3.capture2e(env, RbConfig.ruby, "-e", check)
      expect(status).to be_success, out
      app, publisher = out.lines.map(&:chomp)
      expect(app).to eq("A")
      expect(publisher).to start_with(gem_dir)
      expect(`#{publisher} --version`).to eq("mtshare #{MultiTenant::VERSION}\n")
    end
  end
end
