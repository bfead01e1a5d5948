# frozen_string_literal: true

require "json"
require "open3"
require "tmpdir"
require "fileutils"
require "etc"
require "shellwords"
require "multitenant"

ROOT = File.expand_path("..", __dir__)

module SpecHelpers
  # Real Linux users and a real group, so permissions are the kernel's.
  GROUP = "mtclass"

  # Specs that need root (real users, chown) are skipped elsewhere with a reason, but never under CI.
  def require_root!
    return if Process.uid.zero?
    raise "CI=true but not root: these specs must run" if ENV["CI"] == "true"

    skip "needs root to create real users and chown key files"
  end

  # The users and group are defined once, in the test cluster script.
  def self.ensure_users!
    system(File.join(ROOT, "spec/cluster/testcluster"), "users", exception: true)
  end

  def vectors
    Dir[File.join(ROOT, "docs/vectors/*.json")].sort.map { |f| [File.basename(f, ".json"), JSON.parse(File.read(f))] }
  end

  # Runs the block with these environment variables (nil unsets one), then puts them back.
  def with_env(vars)
    old = vars.to_h { |k, _| [k, ENV[k]] }
    vars.each { |k, v| ENV[k] = v }
    yield
  ensure
    old&.each { |k, v| ENV[k] = v }
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

require_relative "support/cluster"
require_relative "support/real_ood"
require_relative "support/gradio"

RSpec.configure do |config|
  config.include SpecHelpers
  config.include ClusterHelpers, :cluster
  config.disable_monkey_patching!
  config.order = :random
  config.before(:suite) { SpecHelpers.ensure_users! if Process.uid.zero? }
end
