# frozen_string_literal: true

require "json"
require "open3"
require "tmpdir"
require "fileutils"
require "etc"
require "multitenant"

ROOT = File.expand_path("..", __dir__)

module SpecHelpers
  # Real Linux users and a real group, so permissions are the kernel's.
  GROUP = "mtclass"
  USERS = { "mtowner" => :member, "mtmember" => :member, "mtprimary" => :primary, "mtoutsider" => :outsider }.freeze

  # Specs that need root (real users, chown) are skipped elsewhere with a reason, but never under CI.
  def require_root!
    return if Process.uid.zero?
    raise "CI=true but not root: these specs must run" if ENV["CI"] == "true"

    skip "needs root to create real users and chown key files"
  end

  def self.ensure_users!
    system("groupadd", GROUP, exception: true) unless system("getent group #{GROUP} >/dev/null")
    USERS.each do |user, role|
      next if system("getent passwd #{user} >/dev/null")

      args = case role
             when :member then ["-G", GROUP]
             when :primary then ["-g", GROUP]
             else []
             end
      system("useradd", "-M", "-N", "-s", "/bin/sh", *args, user, exception: true)
    end
  end

  def vectors
    Dir[File.join(ROOT, "docs/vectors/*.json")].sort.map { |f| [File.basename(f, ".json"), JSON.parse(File.read(f))] }
  end

  # A world-traversable temp dir (Dir.mktmpdir is 0700, which other users cannot enter).
  def shared_tmpdir
    dir = Dir.mktmpdir("mtspec")
    File.chmod(0o755, dir)
    yield dir
  ensure
    FileUtils.rm_rf(dir) if dir
  end
end

RSpec.configure do |config|
  config.include SpecHelpers
  config.disable_monkey_patching!
  config.order = :random
  config.before(:suite) { SpecHelpers.ensure_users! if Process.uid.zero? }
end
