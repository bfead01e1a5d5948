# frozen_string_literal: true

require "fileutils"
require "rbconfig"

# Builds the extension and the publisher with cargo and puts them where the gem loads them.
# Used by the Rakefile (development) and by the Makefile extconf.rb writes (gem install).
module MultiTenantBuild
  ROOT = File.expand_path("../..", __dir__)
  SO = "libmultitenant.so"

  module_function

  def cargo_build(target_dir)
    offline = File.directory?(File.join(ROOT, "vendor")) ? ["--offline"] : []
    cmd = ["cargo", "build", "--release", "--locked", *offline, "-p", "multitenant-ext", "-p", "mtshare"]
    env = { "RUBY" => RbConfig.ruby, "CARGO_TARGET_DIR" => target_dir }
    system(env, *cmd, chdir: ROOT, exception: true)
  end

  # Copy to a temporary name, then rename: a loaded .so is never overwritten in place.
  def place(src, dest, mode)
    FileUtils.mkdir_p(File.dirname(dest))
    tmp = "#{dest}.#{Process.pid}.tmp"
    FileUtils.cp(src, tmp)
    File.chmod(mode, tmp)
    File.rename(tmp, dest)
  end

  def install(target_dir, lib_dir:, libexec_dir:)
    release = File.join(target_dir, "release")
    place(File.join(release, SO), File.join(lib_dir, "multitenant", "multitenant.so"), 0o755)
    place(File.join(release, "mtshare"), File.join(libexec_dir, "mtshare"), 0o755)
  end

  # `rake compile`: build into target/ and install into this checkout's lib/ and libexec/.
  def compile
    target = File.join(ROOT, "target")
    cargo_build(target)
    install(target, lib_dir: File.join(ROOT, "lib"), libexec_dir: File.join(ROOT, "libexec"))
  end
end
