# frozen_string_literal: true

require "spec_helper"
require "fileutils"
require "tmpdir"

# doctor's code check when symlinks lead somewhere: every directory the kernel walks through on the way
# to the code (also one holding a symlink in the middle of the way) and every file under a directory of
# code (also under a symlinked subdirectory) must be root's alone. No cluster needed; root to chown.
RSpec.describe "admin doctor: code reached through symlinks" do
  before { require_root! }

  before(:all) { require "multitenant/admin" }

  around do |example|
    @dir = Dir.mktmpdir("mt-doctor-", "/var/lib")
    File.chmod(0o755, @dir)
    @gem = File.join(@dir, "real")
    { "lib/multitenant.rb" => 0o644, "lib/multitenant/config.rb" => 0o644, "lib/multitenant/multitenant.so" => 0o755 }.each do |f, mode|
      FileUtils.mkdir_p(File.dirname(File.join(@gem, f)), mode: 0o755)
      File.write(File.join(@gem, f), "x")
      File.chmod(mode, File.join(@gem, f))
    end
    example.run
  ensure
    FileUtils.rm_rf(@dir) if @dir
  end

  def check(gem)
    paths = { File.join(gem, "lib/multitenant.rb") => :dashboard, File.join(gem, "lib/multitenant") => :dashboard }
    problems = []
    MultiTenant::Admin.new(ood_etc: "/nonexistent", env: {}, code_paths: paths).doctor_code(problems, [])
    problems
  end

  it "names a directory another user owns that holds a symlink on the way, though the code is root's" do
    # @dir/gem -> @dir/hop/to (root's symlink), @dir/hop/to -> @dir/real, and mtowner owns @dir/hop:
    # mtowner can point "to" at code of their own, which every dashboard would then load.
    hop = File.join(@dir, "hop")
    FileUtils.mkdir_p(hop, mode: 0o755)
    File.symlink(@gem, File.join(hop, "to"))
    FileUtils.chown("mtowner", nil, hop)
    File.symlink(File.join(hop, "to"), File.join(@dir, "gem"))
    expect(check(File.join(@dir, "gem"))).to include(
      "code: #{hop} is owned by mtowner:root, mode 0755, and every dashboard loads code under it: chown root:root #{hop}; chmod go-w #{hop}"
    )
  end

  it "checks the files under a symlinked subdirectory of the code" do
    other = File.join(@dir, "other")
    FileUtils.mkdir_p(other, mode: 0o755)
    rb = File.join(other, "extra.rb")
    File.write(rb, "x")
    FileUtils.chown("mtowner", nil, rb)
    File.symlink(other, File.join(@gem, "lib/multitenant/extra"))
    expect(check(@gem)).to eq(["code: #{rb} is owned by mtowner:root, mode 0644, and every dashboard loads code under it: chown root:root #{rb}; chmod go-w #{rb}"])
  end

  it "still finds nothing in a tree root owns, reached through root's symlinks" do
    File.symlink(@gem, File.join(@dir, "gem"))
    File.symlink(File.join(@gem, "lib/multitenant"), File.join(@gem, "lib/multitenant/loop"))
    expect(check(File.join(@dir, "gem"))).to eq([])
  end
end
