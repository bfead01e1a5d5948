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
why = RealOOD.ready!("4.2", key_dir)
abort(why) if why
owner = dashboard("4.2", "mtowner").start
fields = { "cluster" => "hpc", "mt_group" => "mtclass", "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default",
           "mt_expires_hours" => "", "bc_num_hours" => "1" }
launched = [["multitenant-llm", { "ollama_model" => "gpt-oss:20b" }],
            ["multitenant-dashboard", { "app_title" => "Lab dashboard", "app_command" => "python3 -m http.server $port" }]].map do |app, extra|
  path = "/batch_connect/sys/#{app}/session_contexts"
  res = owner.post(path, fields.merge(extra).to_h { |k, v| ["batch_connect_session_context[#{k}]", v] }, from: "#{path}/new")
  abort "#{app}: the form answered #{res.code}" unless res.code == "302"
  poll("#{app}'s session", timeout: 30) { db_records("mtowner").find { |r| r["token"] == "sys/#{app}" && !(@jobs || []).include?(r["job_id"]) } }
    .fetch("job_id").tap { |id| (@jobs ||= []) << id }
end
launched.each { |id| poll("job #{id} to publish", timeout: 120) { job_name(id).start_with?("mt|mtclass|1.") } }
owner.stop

member = dashboard("4.2", "mtmember").start
llm_card = member.cards.find { |_, html| html.include?("(#{launched.first})") }&.first or abort "no LLM card for mtmember"
RealOOD.screenshot("#{member.base}/batch_connect/sessions", File.join(ROOT, "docs/sessions.png"), height: 1400)
RealOOD.screenshot("#{member.base}/batch_connect/sessions##{llm_card}", File.join(ROOT, "docs/card.png"), width: 1000, height: 760)
RealOOD.screenshot("#{member.base}/batch_connect/sys/multitenant-jupyter/session_contexts/new", File.join(ROOT, "docs/jupyter-form.png"), height: 700)
puts "wrote docs/card.png, docs/sessions.png and docs/jupyter-form.png"
stop_dashboards
cancel_jobs
