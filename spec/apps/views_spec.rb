# frozen_string_literal: true

require "ostruct"
require "redcarpet"

# Each delivery app's view.html.erb rendered the way OOD renders a card: ERB with connection.yml as an
# OpenStruct binding, then Markdown with no HTML filtering (an approximation of OodAppkit.markdown).
RSpec.describe "delivery app views" do
  MARKDOWN = Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true, strikethrough: true,
                                                              fenced_code_blocks: true, no_intra_emphasis: true)
  HOSTILE = %(<script>alert("x")</script><img src=x onerror=alert(1)>)

  def render(app, conn)
    erb = File.read(File.join(ROOT, "ood/apps", app, "view.html.erb"))
    MARKDOWN.render(ERB.new(erb).result(OpenStruct.new(conn).instance_eval { binding }))
  end

  def base = { "jobid" => "42", "mt_appname" => "Ollama_API", "mt_owner" => "alice", "mt_group" => "class101" }

  # Only real tags count: escaped text such as "&lt;img onerror=...&gt;" is inert.
  def expect_inert(html)
    tags = html.scan(/<([a-zA-Z][a-zA-Z0-9]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/)
    expect(tags.map(&:first).map(&:downcase) & %w[script img object embed svg style link meta form base]).to eq([])
    # The content app's one frame is sandboxed (no scripts, no same origin, no forms).
    tags.select { |t, _| t.casecmp?("iframe") }.each { |_, attrs| expect(attrs).to start_with(' sandbox=""') }
    tags.each do |_, attrs|
      expect(attrs).not_to match(/\s(on[a-z]+|style)\s*=/i)
      expect(attrs).not_to match(/(href|src)\s*=\s*["']?\s*javascript:/i)
    end
  end

  it "default: shows an LLM with URL, model, shell snippets and the assistant settings" do
    html = render("multitenant-delivery_default", base.merge("host" => "node1", "ollama_url" => "http://node1:4000", "ollama_model" => "gpt-oss:120b"))
    expect(html).to include("<h5>LLM API</h5>", "<h5>Code assistant</h5>", %(<a href="http://node1:4000" target="_blank" rel="noopener noreferrer">))
    expect(html).to include("export OLLAMA_HOST=http://node1:4000", "gpt-oss:120b", "Shared by alice with group class101 (job 42).")
    expect(html).not_to include("<pre><code>&lt;") # nothing was double-escaped into a Markdown code block
  end

  it "default: an LLM behind the gate shows what a member pastes into their tool: base URL and key, with commands that keep the key off command lines" do
    key = "0123456789abcdef0123456789abcdef"
    html = render("multitenant-delivery_default", base.merge("host" => "node1", "ollama_url" => "http://node1:4000", "openai_base_url" => "http://node1:4000/v1",
                                                            "ollama_model" => "gpt-oss:120b", "api_key" => key))
    expect(html).to include("<th>OpenAI base URL</th>", %(href="http://node1:4000/v1"), "<th>API key</th>", "<code>#{key}</code>", "OpenAI Compatible")
    expect(html).to include("export OPENAI_BASE_URL=http://node1:4000/v1 OPENAI_API_KEY=#{key}", "export OLLAMA_HOST=http://node1:4000 OLLAMA_API_KEY=#{key}")
    expect(html).to include(%(-H @&lt;(printf &#39;Authorization: Bearer %s\\n&#39; &quot;$OPENAI_API_KEY&quot;)))
    # The key appears in the API key row and the export lines only, never as a command's argument,
    # and only behind a click (nothing on the screen shows it until the member asks).
    expect(html.scan(key).size).to eq(3)
    expect(html.gsub(%r{<details>.*?</details>}m, "")).not_to include(key)
    expect(html).not_to include("<h5>Other values</h5>")
  end

  it "quotes every value in shell snippets so a copy and paste gives back exactly the value" do
    [HOSTILE, "it's", "a b", %($(touch /tmp/mt-pwned) `id` \\ "q"), "plain:1/2", "ünï"].each do |v|
      out, = Open3.capture2("sh", "-c", "printf %s #{MultiTenant::View.sh(v)}")
      expect(out).to eq(v)
    end
    expect(File.exist?("/tmp/mt-pwned")).to be(false)
  end

  it "default: shows a database with a client command, and a JDBC URL" do
    conn = base.merge("db_engine" => "postgresql", "host" => "node42", "port" => "5432", "db_name" => "msba", "db_user" => "student",
                      "db_password" => "p@ss w'rd", "jdbc_url" => "jdbc:postgresql://node42:5432/msba")
    html = render("multitenant-delivery_default", conn)
    expect(html).to include("<h5>Database connection</h5>", "<h5>JDBC URL</h5>", "psql -h node42 -p 5432 -U student msba",
                            "p@ss w&#39;rd", "jdbc:postgresql://node42:5432/msba")
    expect(render("multitenant-delivery_default", conn.merge("db_engine" => "mariadb"))).to include("mysql -h node42 -P 5432 -u student -p msba")
  end

  it "default: offers no command to copy when a value could be read as an option or is not a plain URL" do
    db = base.merge("db_engine" => "postgresql", "host" => "n1", "port" => "5432", "db_user" => "u", "db_name" => "--command=\\! touch /tmp/x")
    html = render("multitenant-delivery_default", db)
    expect(html).to include("<h5>Database connection</h5>")
    expect(html).not_to include("psql")
    html = render("multitenant-delivery_default", base.merge("ollama_url" => "-o/tmp/x http://n1"))
    expect(html).not_to include("curl", "export OLLAMA_HOST")
  end

  it "default: a lone carriage return cannot start a new Markdown line" do
    html = render("multitenant-delivery_default", base.merge("x" => "a\r\r    <b>indented</b>\rb"))
    expect(html).to include("a&#10;&#10;    &lt;b&gt;indented&lt;/b&gt;&#10;b")
    expect(html).not_to include("<pre><code>&lt;b")
  end

  it "default: links a web dashboard only when it is an http(s) URL" do
    expect(render("multitenant-delivery_default", base.merge("url" => "https://lab.example.edu/app"))).to include(%(<a href="https://lab.example.edu/app"))
    html = render("multitenant-delivery_default", base.merge("url" => "javascript:alert(document.cookie)"))
    expect(html).not_to include("<a href")
    expect(html).to include("javascript:alert(document.cookie)")
  end

  describe "a web dashboard on a compute node (MULTITENANT_NODE_PROXY)" do
    around do |example|
      saved = ENV["MULTITENANT_NODE_PROXY"]
      example.run
    ensure
      saved ? ENV["MULTITENANT_NODE_PROXY"] = saved : ENV.delete("MULTITENANT_NODE_PROXY")
    end

    let(:board) { base.merge("host" => "node1.cluster", "port" => "4242", "url" => "http://node1.cluster:4242/app?x=1&y=<2>") }

    it "links through OOD's /rnode/ proxy by default, and shows the direct URL as text" do
      ENV.delete("MULTITENANT_NODE_PROXY")
      html = render("multitenant-delivery_default", board)
      expect(html).to include(%(<a class="btn btn-primary" href="/rnode/node1.cluster/4242/app?x=1&amp;y=%3C2%3E" target="_blank" rel="noopener noreferrer">Open</a>))
      expect(html).to include("<code>http://node1.cluster:4242/app?x=1&amp;y=&lt;2&gt;</code>")
      expect(html).not_to include(%(href="http://node1.cluster))
      expect_inert(html)
    end

    it "behind the gate: Open posts the key once to the gate's login through the proxy; the key is in no link" do
      key = "0123456789abcdef0123456789abcdef"
      gated = board.merge("url" => "http://node1.cluster:4242/", "api_key" => key)
      { nil => "/rnode/node1.cluster/4242/", "node" => "/node/node1.cluster/4242/", "direct" => "http://node1.cluster:4242/" }.each do |mode, target|
        mode ? ENV["MULTITENANT_NODE_PROXY"] = mode : ENV.delete("MULTITENANT_NODE_PROXY")
        html = render("multitenant-delivery_default", gated)
        form = html[%r{<form [^>]*>.*?</form>}m]
        expect(form).to include(%(method="post" action="#{target}?multitenant-login" target="_blank"))
        expect(form).to include(%(<input type="hidden" name="multitenant_key" value="#{key}">), ">Open</button>")
        expect(html.scan(/href="([^"]*)"/).flatten.grep(/#{key}/)).to eq([])
        expect(html.gsub(%r{<details>.*?</details>|<input type="hidden"[^>]*>}m, "")).not_to include(key)
        expect(html).to include("Authorization: Bearer")
        expect(html).not_to match(/<th>api_key<\/th>/)
      end
    end

    it "links through /node/ when the site says node, and straight to the node when it says direct" do
      ENV["MULTITENANT_NODE_PROXY"] = "node"
      expect(render("multitenant-delivery_default", board.merge("url" => "http://node1.cluster:4242"))).to include(%(href="/node/node1.cluster/4242/"))
      ENV["MULTITENANT_NODE_PROXY"] = "direct"
      html = render("multitenant-delivery_default", board.merge("url" => "http://node1.cluster:4242/"))
      expect(html).to include(%(<a href="http://node1.cluster:4242/" target="_blank" rel="noopener noreferrer">http://node1.cluster:4242/</a>))
      expect(html).not_to include("/rnode/", "/node/")
      ENV["MULTITENANT_NODE_PROXY"] = "bogus"
      expect(render("multitenant-delivery_default", board.merge("url" => "http://node1.cluster:4242/"))).to include(%(href="/rnode/node1.cluster/4242/"))
    end

    it "proxies only a plain http URL on the share's own node; anything else is linked or shown as before" do
      ENV.delete("MULTITENANT_NODE_PROXY")
      others = ["https://node1.cluster:4242/", "http://elsewhere:4242/", "http://user:pw@node1.cluster:4242/", "http://lab.example.edu/app"]
      others.each do |url|
        expect(render("multitenant-delivery_default", board.merge("url" => url))).not_to include("/rnode/"), url
      end
      expect(render("multitenant-delivery_default", board.merge("host" => "node1.cluster/../x", "url" => "http://node1.cluster:4242/"))).not_to include("/rnode/")
    end
  end

  it "debug: shows the share as JSON with secrets only behind a click" do
    html = render("multitenant-delivery_debug", base.merge("db_password" => "hunter2", "api_token" => "t0k", "host" => "n1"))
    visible = html.split("<details>").first
    expect(visible).to include("&quot;db_password&quot;: &quot;(hidden)&quot;", "&quot;host&quot;: &quot;n1&quot;")
    expect(visible).not_to include("hunter2", "t0k")
    expect(html).to include("<summary>Show secrets</summary>", "hunter2")
  end

  it "content: renders published Markdown inside a sandboxed frame and reads no file" do
    html = render("multitenant-delivery_content", base.merge("content" => "# Week 3\n\n* read [the notes](https://example.edu)\n* [bad](javascript:alert(1))\n\n/etc/passwd"))
    frame = html[/<iframe[^>]*>/]
    expect(frame).to include('sandbox=""', "srcdoc=")
    expect(CGI.unescapeHTML(frame[/srcdoc="([^"]*)"/, 1])).to include(%(<meta http-equiv="Content-Security-Policy" content="default-src 'none';))
    doc = CGI.unescapeHTML(frame[/srcdoc="([^"]*)"/, 1])
    expect(doc).to include("<h1>Week 3</h1>", %(<a href="https://example.edu">the notes</a>))
    expect(doc).not_to match(/href="javascript:/)
    expect(doc).to include("[bad](javascript:alert(1))") # left as text
    expect(doc).not_to include("root:x:0:0")
  end

  it "content: HTML stays inside the sandbox" do
    html = render("multitenant-delivery_content", base.merge("content" => HOSTILE, "content_format" => "html"))
    expect(html.scan(/<iframe/).size).to eq(1)
    expect_inert(html.sub(/srcdoc="[^"]*"/, ""))
    expect(html).to include("srcdoc=\"&lt;!doctype html&gt;")
  end

  %w[default debug content].each do |app|
    it "#{app}: says who shared it first, before anything the publisher chose" do
      conn = base.merge("mt_appname" => "Reading list", "host" => "node1", "ollama_url" => "http://node1:4000", "content" => "Week 3")
      html = render("multitenant-delivery_#{app}", conn)
      shared_by = %(<div class="multitenant"><p class="mt-shared-by text-muted">Shared by alice with group class101 (job 42).</p>)
      expect(html).to start_with(shared_by)
      expect(html.scan("Shared by").size).to eq(1)
      expect(html.index("Shared by alice")).to be < [html.index("Reading list"), html.index("node1")].compact.min
    end

    it "#{app}: renders hostile values as text, in every field" do
      evil = base.transform_values { HOSTILE }.merge("ollama_url" => HOSTILE, "ollama_model" => HOSTILE, "db_name" => HOSTILE, "host" => HOSTILE,
                                                     "jdbc_url" => HOSTILE, "url" => HOSTILE, "content" => HOSTILE, "x" => "#{HOSTILE}\n\n    indented\n\n#{HOSTILE}")
      html = render("multitenant-delivery_#{app}", evil)
      expect_inert(app == "content" ? html.sub(/srcdoc="[^"]*"/, "") : html)
      expect(html).to include("&lt;script&gt;") unless app == "content"
    end

    it "#{app}: says so when the gem is not loaded, instead of breaking the sessions page" do
      erb = File.read(File.join(ROOT, "ood/apps/multitenant-delivery_#{app}/view.html.erb"))
      out, err, status = Open3.capture3(RbConfig.ruby, "-rerb", "-rostruct", "-e", "puts ERB.new(STDIN.read).result(OpenStruct.new(jobid: '1').instance_eval { binding })", stdin_data: erb)
      expect(status).to be_success, err
      expect(out).to include("This share cannot be shown: multitenant is not loaded on this dashboard.")
    end

    it "#{app}: is hidden from menus (its form raises)" do
      expect { ERB.new(File.read(File.join(ROOT, "ood/apps/multitenant-delivery_#{app}/form.yml.erb"))).result }.to raise_error(RuntimeError, /not launched/)
    end
  end
end
