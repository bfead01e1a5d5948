# frozen_string_literal: true

# `rake demo` (as root, on a test machine): the whole path, for real.
#   1. bring up the one-node Slurm test cluster and its users;
#   2. mtowner starts a small web service as a batch job (--wckey=multitenant) that publishes itself
#      to group mtclass with mtshare;
#   3. discovery runs as a member, as an outsider and as the owner; each one's specs and cards are shown,
#      and the member reaches the service through the published URL;
#   4. the member's real Open OnDemand dashboard is left serving the delivered card on 127.0.0.1:3999,
#      and a screenshot of it is saved.
require "json"
require "yaml"
require "open3"
require "fileutils"
require "net/http"
require "tmpdir"
require "multitenant"

ROOT = File.expand_path("../..", __dir__)
LAB = "/var/tmp/multitenant-demo"

def step(text) = puts("\n== #{text}")

def sh!(*cmd, **opts)
  out, err, status = Open3.capture3(*cmd, **opts)
  raise "#{cmd.join(" ")} failed: #{err}" unless status.success?

  out
end

def as(user, *cmd, env: {}) = ["runuser", "-u", user, "--", "env", "-i", "PATH=/usr/bin:/bin", *env.map { |k, v| "#{k}=#{v}" }, *cmd]

step "Starting the test cluster (spec/cluster/testcluster up)"
system(File.join(ROOT, "spec/cluster/testcluster"), "up", exception: true)

step "Key for group mtclass (root:mtclass 0440) and the publisher, in #{LAB}"
FileUtils.rm_rf(LAB)
FileUtils.mkdir_p(LAB)
# OOD's clusters.d entry that install writes for the test cluster (the hidden dismiss copy).
FileUtils.mkdir_p(File.join(LAB, "clusters.d"))
File.write(File.join(LAB, "clusters.d/mtcluster-multitenant.yml"),
           YAML.dump("v2" => { "metadata" => { "hidden" => true }, "job" => { "adapter" => "slurm" } }))
File.chmod(0o755, LAB)
FileUtils.cp(MultiTenant.publisher_path, File.join(LAB, "mtshare"))
puts sh!(File.join(LAB, "mtshare"), "keygen", "--group", "mtclass", "--key-dir", File.join(LAB, "keys"))

step "mtowner submits a web service that shares itself with mtclass"
server = <<~'RUBY'
  require "socket"
  srv = TCPServer.new("127.0.0.1", 0)
  File.write("port", srv.addr[1].to_s)
  loop do
    c = srv.accept
    c.gets
    body = "Hello from #{ENV["SLURM_JOB_USER"]}'s lab dashboard (job #{ENV["SLURM_JOB_ID"]})\n"
    c.write "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}"
    c.close
  end
RUBY
File.write(File.join(LAB, "server.rb"), server)
job_script = <<~SH
  #!/bin/sh
  cd "$(mktemp -d)"
  ruby #{LAB}/server.rb & pid=$!
  while [ ! -s port ]; do sleep 0.1; done
  port=$(cat port)
  # host: the job's node as Slurm names it (members' dashboards refuse a share naming another host)
  #{LAB}/mtshare publish --group mtclass --app Lab_Dashboard --delivery sys/multitenant-delivery_default \\
      --set host="$SLURMD_NODENAME" --set port="$port" --set url="http://127.0.0.1:$port/" --expires-in 1h || exit 1
  wait $pid
SH
File.write(File.join(LAB, "service.sh"), job_script)
File.chmod(0o755, File.join(LAB, "service.sh"))
work = File.join(LAB, "owner")
FileUtils.mkdir_p(work)
FileUtils.chown("mtowner", nil, work)
out_file = File.join(work, "job.out")
id = sh!(*as("mtowner", "sbatch", "--parsable", "--wckey=multitenant", "-J", "lab-dashboard", "-o", out_file,
             "--chdir", work, File.join(LAB, "service.sh"), env: { "MULTITENANT_KEY_DIR" => File.join(LAB, "keys") })).strip
puts "job #{id} submitted"
name = ""
150.times do
  name = sh!("squeue", "-h", "-j", id, "-O", "Name:").strip
  break if name.include?("|")

  sleep 0.2
end
abort "job #{id} did not publish itself; its output:\n#{File.exist?(out_file) ? File.read(out_file) : "(none)"}" unless name.include?("|")
puts "job #{id} renamed itself (#{name.size} characters):", "  #{name}", "its output:", File.read(out_file).gsub(/^/, "  ")

step "What everyone can see: mtshare inspect (no key)"
puts sh!(File.join(LAB, "mtshare"), "inspect", name)

%w[mtmember mtoutsider mtowner].each do |user|
  step "Discovery as #{user}"
  home = File.join(LAB, "home", user)
  dataroot = File.join(home, "ondemand/data/sys/dashboard")
  FileUtils.mkdir_p(dataroot)
  FileUtils.chown_R(user, nil, home)
  File.chmod(0o700, home)
  File.chmod(0o755, File.join(LAB, "home"))
  script = <<~RUBY
    require "multitenant"; require "json"
    config = MultiTenant::Config.new(key_dir: #{File.join(LAB, "keys").inspect}, clusters: { "mtcluster" => "mtcluster-multitenant" },
                                     clusters_dir: #{File.join(LAB, "clusters.d").inspect})
    specs = MultiTenant.discover(dataroot: #{dataroot.inspect}, config: config)
    puts "MultiTenant.specs = \#{JSON.pretty_generate(specs)}"
    specs.each do |job, s|
      puts %(  job \#{job}: "mtu": "" means no allow-list (every member of \#{s.dig("info", "group")} is shown the share)) if s.dig("accounting", "mtu") == ""
      next unless s.dig("info", "card_id").nil?

      why = s.dig("info", "user") == #{user.inspect} ? "this is #{user}'s own share: the owner has the session itself, so no card" : "no card for this share here (a form share, a delivery app or cluster not carded, or no data root)"
      puts %(  job \#{job}: "card_id": null: \#{why})
    end
    puts "MultiTenant.errors = \#{MultiTenant.errors.inspect}"
    puts "cards: \#{MultiTenant.cards.reject { |_, v| v.respond_to?(:empty?) ? v.empty? : v.zero? }.inspect}"
    url = specs.dig(#{id.inspect}, "connection", "url")
    puts "GET \#{url} -> \#{Net::HTTP.get(URI(url)).chomp}" if url
  RUBY
  puts sh!(*as(user, RbConfig.ruby, "-rnet/http", "-I", File.join(ROOT, "lib"), "-e", script), chdir: LAB)
  files = Dir.glob("#{dataroot}/**/*").select { |f| File.file?(f) }
  puts files.empty? ? "card files: none" : "card files:"
  files.each { |f| puts "  #{f.delete_prefix(dataroot + "/")} (#{format("%o", File.stat(f).mode & 0o777)})", File.read(f).gsub(/^/, "    ") }
end

step "The member's REAL Open OnDemand 4.2.3 dashboard (spec/ood/realood), with multitenant installed by `rake -f admin.rake install`"
env = { "MT_OOD_ENV" => "MULTITENANT_KEY_DIR=#{File.join(LAB, "keys")} MULTITENANT_NODE_PROXY=direct" }
url = sh!(env, File.join(ROOT, "spec/ood/realood"), "up", "4.2", "mtmember", "3999").strip
sessions = "#{url}batch_connect/sessions"
page = Net::HTTP.get(URI(sessions))
abort "the member's sessions page has no card for job #{id}" unless page.include?("(#{id})")
shot = File.join(LAB, "sessions.png")
require_relative "../support/real_ood"
RealOOD.screenshot(sessions, shot, height: 1000)
puts "mtmember's dashboard shows the card of job #{id}: open #{sessions}",
     "(from another machine: ssh -L 3999:127.0.0.1:3999 <this host>, then the same URL)",
     "screenshot of that page: #{shot}",
     "stop it: #{File.join(ROOT, "spec/ood/realood")} down 4.2 mtmember; scancel #{id}"
