# frozen_string_literal: true

# `rake pictures` (as root, on a test machine): the README's pictures, taken from the REAL Open OnDemand
# 4.2.3 dashboard (spec/ood/realood) on the real test cluster by headless Chromium:
#   docs/card.png         a member's delivered LLM card (vLLM)
#   docs/sessions.png     the member's "My Interactive Sessions" with two delivered shares
#   docs/jupyter-form.png the Jupyter client's form listing the shared LLM
#   docs/owner.png        the owner's sessions page: the apps' menu and the owner's own cards
# mtowner launches the LLM app (with the spec's stand-in ollama), the web dashboard app and the vLLM app
# (the spec's stand-in vllm) through the real forms; mtmember's dashboard then starts and shows them.
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
# The owner's sessions page shows its own newest first: the vLLM card on top.
board = launch(owner, "multitenant-dashboard", share_fields("app_title" => "Lab dashboard", "app_command" => "python3 -m http.server --bind 127.0.0.1 $port"))
llm = launch(owner, "multitenant-llm", share_fields("ollama_model" => "gpt-oss:20b"))
vllm = launch(owner, "multitenant-vllm", share_fields("vllm_model" => "openai/gpt-oss-20b", "vllm_gpus" => "0", "mt_allow" => "mtmember", "mt_expires_hours" => "8"))
[board, llm, vllm].each { |rec| wait_shared(rec["job_id"]) }
owner.stop

member = dashboard("4.2", "mtmember").start
member.cards.any? { |_, html| html.include?("(#{vllm["job_id"]})") } or abort "no vLLM card for mtmember"
RealOOD.screenshot("#{member.base}/batch_connect/sessions", File.join(ROOT, "docs/sessions.png"), height: 1400)
RealOOD.screenshot("#{member.base}/batch_connect/sessions", File.join(ROOT, "docs/card.png"), width: 1000, height: 900)
RealOOD.screenshot("#{member.base}/batch_connect/sys/multitenant-jupyter/session_contexts/new", File.join(ROOT, "docs/jupyter-form.png"), height: 700)
member.stop
# The owner's next start finds its own shares; its sessions page shows them with the apps' menu.
owner = dashboard("4.2", "mtowner").start
owner.cards[vllm["id"]].to_s.include?("Shared now.") or abort "the owner's vLLM card does not say it is shared"
RealOOD.screenshot("#{owner.base}/batch_connect/sessions", File.join(ROOT, "docs/owner.png"), width: 1200, height: 1300)
puts "wrote docs/card.png, docs/sessions.png, docs/jupyter-form.png and docs/owner.png"
