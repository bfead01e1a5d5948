# frozen_string_literal: true

# Renders docs/card.png: the real multitenant-delivery_default view, through ERB and Markdown as OOD
# renders a card, inside a page styled like OOD's session card; screenshot by headless Chromium.
#   ruby -Ilib docs/make_card_picture.rb   (needs Debian's chromium and ruby-redcarpet)
require "erb"
require "ostruct"
require "redcarpet"
require "tmpdir"
require "multitenant"

ROOT = File.expand_path("..", __dir__)
conn = { "host" => "node017", "port" => "41234", "ollama_url" => "http://node017.cluster.example.edu:41234",
         "ollama_model" => "gpt-oss:120b", "jobid" => "48213", "mt_appname" => "Ollama_API", "mt_owner" => "jsmith",
         "mt_group" => "class101" }
view = File.read(File.join(ROOT, "ood/apps/multitenant-delivery_default/view.html.erb"))
markdown = Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true, fenced_code_blocks: true)
body = markdown.render(ERB.new(view).result(OpenStruct.new(conn).instance_eval { binding }))
page = <<~HTML
  <!doctype html><html><head><meta charset="utf-8"><style>
  body{font-family:"DejaVu Sans",sans-serif;font-size:14px;background:#f5f5f5;margin:0;padding:16px;color:#212529}
  .card{background:#fff;border:1px solid #d4d4d4;border-radius:4px;width:760px}
  .card-header{background:#5cb85c;color:#fff;padding:8px 12px;display:flex;justify-content:space-between}
  .badge{background:#fff;color:#3d8b3d;border-radius:3px;padding:1px 8px;font-size:12px}
  .card-body{padding:12px}
  .meta{font-size:13px;margin-bottom:8px}.meta b{display:inline-block;width:90px}
  h5{font-size:15px;margin:12px 0 6px;border-bottom:1px solid #eee;padding-bottom:3px}
  table{border-collapse:collapse}th{text-align:left;padding:2px 12px 2px 0}td{padding:2px 0}
  pre{background:#f8f8f8;border:1px solid #e1e1e1;padding:6px;margin:6px 0;font-size:12px;white-space:pre-wrap}
  .text-muted{color:#6c757d}.small{font-size:12px}a{color:#0d6efd}
  .btn{background:#d9534f;color:#fff;border-radius:3px;padding:4px 10px;font-size:12px;display:inline-block;margin-top:6px}
  </style></head><body><div class="card"><div class="card-header"><span>Ollama_API from jsmith (48213)</span><span class="badge">Running</span></div>
  <div class="card-body"><div class="meta"><b>Host:</b> node017<br><b>Created at:</b> 2026-11-24 09:12:04 UTC<br><b>Session ID:</b> <span class="text-muted">d3259cd4-c536-8ae9-bc08-3b535c8ea64f</span></div>
  #{body}<span class="btn">Delete</span></div></div></body></html>
HTML
Dir.mktmpdir do |dir|
  File.write(File.join(dir, "card.html"), page)
  out = File.join(ROOT, "docs/card.png")
  system("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--user-data-dir=#{dir}/profile", "--window-size=800,450", "--screenshot=#{out}", "file://#{dir}/card.html",
         exception: true, err: File::NULL)
  puts "wrote #{out}"
end
