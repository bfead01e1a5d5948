# frozen_string_literal: true

require "ostruct"

# What the apps run on the compute nodes comes from the site's settings in the dashboard's env, rendered
# into the job script, never from a path written into a template.
RSpec.describe "the apps' site settings" do
  def before_sh(engine, env)
    context = OpenStruct.new("db_engine" => engine, "db_name" => "msba")
    with_env(env) { ERB.new(File.read(File.join(ROOT, "ood/apps/multitenant-database/template/before.sh.erb"))).result(binding) }
  end

  # Sources the rendered before.sh as OOD's job script does, then asks which programs the job would run.
  def programs(script, names)
    out, err, st = Open3.capture3("bash", "-c", "host=node1; find_port() { echo 4242; }\n#{script}\nfor p in #{names.join(" ")}; do command -v \"$p\" || echo \"$p: none\"; done")
    expect(st).to be_success, err
    out.lines(chomp: true)
  end

  %w[postgresql mariadb].each do |engine|
    it "the database app (#{engine}) runs the site's server and client programs first, from a directory whose name needs quoting" do
      Dir.mktmpdir("pg bin $(id)") do |dir|
        names = engine == "mariadb" ? %w[mariadb-install-db mariadbd mariadb] : %w[initdb postgres psql]
        names.each { |n| File.write(File.join(dir, n), "#!/bin/sh\n").then { File.chmod(0o755, File.join(dir, n)) } }
        var = engine == "mariadb" ? "MULTITENANT_MARIADB_BIN" : "MULTITENANT_POSTGRES_BIN"
        expect(programs(before_sh(engine, var => dir), names)).to eq(names.map { |n| File.join(dir, n) })
        other = engine == "mariadb" ? "MULTITENANT_POSTGRES_BIN" : "MULTITENANT_MARIADB_BIN"
        expect(programs(before_sh(engine, other => dir), names)).not_to include(*names.map { |n| File.join(dir, n) })
      end
    end
  end

  it "the database app's setting stays ahead of a module that puts its own directory first" do
    Dir.mktmpdir do |dir|
      site, mod = %w[site module].map { |d| File.join(dir, d).tap { |p| FileUtils.mkdir_p(p) } }
      [site, mod].each { |d| File.write(File.join(d, "initdb"), "#!/bin/sh\n").then { File.chmod(0o755, File.join(d, "initdb")) } }
      script = ERB.new(File.read(File.join(ROOT, "ood/apps/multitenant-database/template/script.sh.erb"))).result(binding)
      head = script.lines.take_while { |l| !l.start_with?("mkdir") }.join # up to where the server is made
      job = "module() { PATH=#{mod}:$PATH; }\n#{before_sh("postgresql", "MULTITENANT_POSTGRES_BIN" => site)}\n" \
            "bash -c #{Shellwords.escape("module() { PATH=#{mod}:$PATH; }\n#{head}\ncommand -v initdb")}"
      out, err, st = Open3.capture3("bash", "-c", "host=node1; find_port() { echo 4242; }\n#{job}")
      expect([st.success?, out.strip]).to eq([true, File.join(site, "initdb")]), err
    end
  end

  it "without a setting, the database app leaves PATH as the site's module system and Debian's locations make it" do
    expect(before_sh("postgresql", "MULTITENANT_POSTGRES_BIN" => nil)).not_to include("export PATH")
  end
end
