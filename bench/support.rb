# frozen_string_literal: true

# What every benchmark script uses: the checkout's root and one way to run a command.
require "json"
require "open3"
require "fileutils"
require "multitenant"

ROOT = File.expand_path("..", __dir__)

# The command's stdout; its stderr in the exception when it fails.
def sh!(*cmd, **opts)
  out, err, status = Open3.capture3(*cmd, **opts)
  raise "#{cmd.join(" ")}: #{err}" unless status.success?

  out
end
