# frozen_string_literal: true

# `rake pictures` (as root, on a test machine): the README's pictures, taken from the REAL Open OnDemand
# 4.2.3 dashboard (spec/ood/realood) on the real test cluster by headless Chromium:
#   docs/card.png         a member's delivered LLM card
#   docs/sessions.png     the member's "My Interactive Sessions" with two delivered shares
#   docs/jupyter-form.png the Jupyter client's form listing the shared LLM
# mtowner launches the LLM app (with the spec's stand-in ollama) and the web dashboard app through the
# real forms; mtmember's dashboard then starts and shows them.
ROOT = File.expand_path("..", __dir__)
$LOAD_PATH.unshift(File.join(ROOT, "lib"))
require "json"
require "open3"
require "fileutils"
require "etc"
require "shellwords"
require "timeout"
require "tmpdir"
require "multitenant"
require_relative "../spec/support/cluster"
require_relative "../spec/support/real_ood"

include ClusterHelpers # rubocop:disable Style/MixinUsage -- a script, not a library
include RealOOD::Helpers # rubocop:disable Style/MixinUsage

def require_cluster! = (why = ClusterHelpers.up!) && abort("cluster: #{why}")

require_cluster!
at_exit do
  stop_dashboards
  cancel_jobs
end
why = RealOOD.ready!("4.2", key_dir)
abort(why) if why
%w[mtowner mtmember].each { |u| wipe_dataroot(u) }
owner = dashboard("4.2", "mtowner").start
# Newest first on the sessions page: the LLM's card on top.
launched = [launch(owner, "multitenant-dashboard", share_fields("app_title" => "Lab dashboard", "app_command" => "python3 -m http.server --bind 127.0.0.1 $port")),
            launch(owner, "multitenant-llm", share_fields("ollama_model" => "gpt-oss:20b"))]
  .map { |rec| rec["job_id"] }.reverse
launched.each { |id| wait_shared(id) }
owner.stop

member = dashboard("4.2", "mtmember").start
member.cards.any? { |_, html| html.include?("(#{launched.first})") } or abort "no LLM card for mtmember"
RealOOD.screenshot("#{member.base}/batch_connect/sessions", File.join(ROOT, "docs/sessions.png"), height: 1400)
RealOOD.screenshot("#{member.base}/batch_connect/sessions", File.join(ROOT, "docs/card.png"), width: 1000, height: 900)
RealOOD.screenshot("#{member.base}/batch_connect/sys/multitenant-jupyter/session_contexts/new", File.join(ROOT, "docs/jupyter-form.png"), height: 700)
puts "wrote docs/card.png, docs/sessions.png and docs/jupyter-form.png"
