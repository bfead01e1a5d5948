# frozen_string_literal: true

# Discovery at scale on the real test cluster: `rake bench:cluster` (as root). For each size N in
# SIZES (default "25 100 500 2000"): N shares of mtowner for mtclass and N plain jobs of mtmember run
# at once (the node is given MT_NODE_CPUS=6200 CPUs to hold them), and one Ruby process running as
# mtmember times, in one interleaved loop of RUNS (15) rounds, median reported: the bare squeue call
# discovery makes, a later start (every share's card present, caps lifted), discovery without cards, a
# first start (an empty data root each round), and the sacct strategy's bare calls and later start.
# A fresh process then measures what one discovery leaves retained. Jobs are cancelled in batches
# of 500, each batch left to drain, and the node goes back to its usual size at the end.
# HELD=46000 then adds that many held (pending) jobs of root beside the last size's running jobs and
# measures again: squeue's answer is every job slurmctld holds (its --states filter is applied by the
# client), so this is squeue at 50 000 jobs without 50 000 processes. MaxJobCount is raised for it.
require_relative "support"
require "yaml"

LAB = "/var/tmp/multitenant-cluster-scale"
RUNS = Integer(ENV.fetch("RUNS", "15"))
SIZES = ENV.fetch("SIZES", "25 100 500 2000").split.map { |s| Integer(s) }
HELD = Integer(ENV.fetch("HELD", "0"))
TESTCLUSTER = File.join(ROOT, "spec/cluster/testcluster")

# Polls until the block is true; a scheduler command that fails meanwhile (slurmctld busy with
# thousands of ending jobs answers "Socket timed out") counts as not yet.
def wait_for(what, tries: 4800)
  tries.times do
    return if begin
      yield
    rescue RuntimeError
      false
    end

    sleep 0.25
  end
  raise "timed out: #{what}"
end

def running = sh!("squeue", "-h", "-t", "R", "-o", "%i").lines.size
def queued = sh!("squeue", "-h", "-o", "%i").lines.size

# Cancels every job of the test users, 500 at a time, each batch left to end before the next.
def drain
  ids = sh!("squeue", "-h", "-u", "mtowner,mtmember", "-o", "%i").split
  ids.each_slice(500) do |batch|
    system("scancel", *batch)
    wait_for("#{batch.size} jobs to end") { (sh!("squeue", "-h", "-o", "%i").split & batch).empty? }
  end
end

def submit(user, count, wckey: nil)
  args = ["sbatch", "--parsable", "-o", "/dev/null", "--chdir", LAB, *(wckey ? ["--wckey=#{wckey}"] : []), "--wrap", "sleep 7200"]
  Array.new(4) { |t| Thread.new { Array.new(count / 4 + (t < count % 4 ? 1 : 0)) { sh!("runuser", "-u", user, "--", *args).strip } } }.flat_map(&:value)
end

sh!({ "MT_NODE_CPUS" => "6200", "MT_MAX_JOBS" => "60000" }, TESTCLUSTER, "up")
drain
FileUtils.rm_rf(LAB)
FileUtils.mkdir_p(File.join(LAB, "clusters.d"), mode: 0o755)
File.chmod(0o755, LAB)
File.write(File.join(LAB, "clusters.d/mtcluster-multitenant.yml"),
           YAML.dump("v2" => { "metadata" => { "hidden" => true }, "job" => { "adapter" => "slurm" } }))
keys = MultiTenant::KeyDir.new(File.join(LAB, "keys"))
keys.generate(group: "mtclass")
key = keys.sealing_key("mtclass")
node = `hostname -s`.strip

PROBE = <<~'RUBY'
  require "multitenant"; require "json"; require "open3"; require "fileutils"
  lab, runs, n = ARGV[0], Integer(ARGV[1]), Integer(ARGV[2])
  def ms = Process.clock_gettime(Process::CLOCK_MONOTONIC) * 1000
  def median(list) = list.sort[list.size / 2]
  config = ->(strategy) { MultiTenant::Config.new(key_dir: File.join(lab, "keys"), strategy: strategy, clusters: { "mtcluster" => "mtcluster-multitenant" },
                                                   max_cards: 10_000, max_cards_per_owner: 10_000, timeout: 60, clusters_dir: File.join(lab, "clusters.d")) }
  squeue, sacct = config.("squeue"), config.("sacct")
  home = File.join(lab, "home", n.to_s)
  warm = FileUtils.mkdir_p(File.join(home, "warm")).first
  found = MultiTenant.discover(config: squeue, dataroot: warm).size
  raise "found #{found}, not #{n}: #{MultiTenant.errors}" unless found == n
  MultiTenant.discover(config: squeue, dataroot: warm) until MultiTenant.cards["held_back"].empty?
  ids = MultiTenant.specs.keys.join(",")
  f = "@f@"
  t = Hash.new { |h, k| h[k] = [] }
  runs.times do |i|
    s = ms; Open3.capture2("squeue", "--all", "--noheader", "--states=RUNNING", "-O", "JobID:#{f},UserName:#{f},WCKey:#{f},Cluster:#{f},RestartCnt:#{f},NodeList:#{f},Name:@x@"); t["bare squeue"] << ms - s
    s = ms; MultiTenant.discover!(config: squeue, dataroot: warm); t["later start"] << ms - s
    s = ms; MultiTenant.discover!(config: squeue); t["no cards"] << ms - s
    root = FileUtils.mkdir_p(File.join(home, "first#{i}")).first
    # Not discover!: a slow disk may spend the 2 s write budget; the cards made are counted.
    s = ms; MultiTenant.discover(config: squeue, dataroot: root); t["first start"] << ms - s
    t["cards made"] << MultiTenant.cards["created"].size
    s = ms
    Open3.capture2("sacct", "--allocations", "--noheader", "--parsable2", "--delimiter=#{f}", "--allusers", "--state=RUNNING", "--wckeys=multitenant", "--format=JobIDRaw,User,Cluster,WCKey")
    Open3.capture2("squeue", "--all", "--noheader", "--states=RUNNING", "--jobs", ids, "-O", "JobID:#{f},UserName:#{f},RestartCnt:#{f},NodeList:#{f},Name:@x@")
    t["bare sacct + squeue -j"] << ms - s
    s = ms; MultiTenant.discover!(config: sacct, dataroot: warm); t["later start, sacct"] << ms - s
  end
  puts JSON.dump(t.transform_values { |v| median(v) })
RUBY

MEMORY = <<~'RUBY'
  require "multitenant"; require "json"; require "objspace"
  lab, n = ARGV[0], Integer(ARGV[1])
  def rss_kb = File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  config = MultiTenant::Config.new(key_dir: File.join(lab, "keys"), clusters: { "mtcluster" => "mtcluster-multitenant" },
                                   max_cards: 10_000, max_cards_per_owner: 10_000, timeout: 60, clusters_dir: File.join(lab, "clusters.d"))
  GC.start
  before = [rss_kb, ObjectSpace.memsize_of_all]
  MultiTenant.discover!(config: config, dataroot: File.join(lab, "home", n.to_s, "warm"))
  GC.start
  after = [rss_kb, ObjectSpace.memsize_of_all]
  peak = File.read("/proc/self/status")[/^VmHWM:\s+(\d+)/, 1].to_i
  puts JSON.dump("retained RSS KB" => after[0] - before[0], "retained objects B" => after[1] - before[1], "peak RSS KB" => peak)
RUBY

def measure(n)
  home = File.join(LAB, "home", n.to_s)
  FileUtils.mkdir_p(home)
  FileUtils.chown_R("mtmember", nil, File.join(LAB, "home"))
  probe = ["runuser", "-u", "mtmember", "--", RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e"]
  times = JSON.parse(sh!(*probe, PROBE, LAB, RUNS.to_s, n.to_s, chdir: LAB).lines.last)
  memory = JSON.parse(sh!(*probe, MEMORY, LAB, n.to_s, chdir: LAB).lines.last)
  FileUtils.rm_rf(home)
  times.merge(memory).merge("jobs" => queued)
end

rows = SIZES.map do |n|
  drain
  shares = submit("mtowner", n, wckey: "multitenant")
  submit("mtmember", n)
  shares.each_slice(n / 4 + 1).map do |slice|
    Thread.new do
      slice.each_with_index do |id, i|
        msg = { "session_id" => "0f8fad5b-d9cb-469f-a165-#{format("%012d", i)}", "app" => "Ollama_#{id}", "method" => "card",
                "delivery" => "sys/multitenant-delivery_default", "connection" => { "host" => node, "ollama_url" => "http://#{node}:41234" } }
        name = MultiTenant::Envelope.seal(msg, key: key, group: "mtclass", job_id: id, owner: "mtowner", cluster: "mtcluster")
        sh!("scontrol", "update", "JobId=#{id}", "JobName=#{name}")
      end
    end
  end.each(&:join)
  wait_for("#{2 * n} running") { running == 2 * n }
  [n, measure(n)].tap { |r| warn r.inspect }
end
if HELD.positive?
  n = SIZES.last
  Array.new(8) do |t|
    Thread.new { (HELD / 8 + (t < HELD % 8 ? 1 : 0)).times { sh!("sbatch", "--hold", "-o", "/dev/null", "--chdir", LAB, "--wrap", "true") } }
  end.each(&:join)
  rows << [n, measure(n)].tap { |r| warn r.inspect }
  system("scancel", "--state=PENDING", "-u", "root")
  wait_for("held jobs gone") { sh!("squeue", "-h", "-u", "root", "-o", "%i").strip.empty? }
end
drain
sh!(TESTCLUSTER, "up")

puts "| shares : jobs in the queue | bare squeue | later start | later − bare, per share | no cards | first start | first − later, per card | " \
     "bare sacct + squeue -j | later start, sacct | retained RSS, per share | retained objects, per share | peak RSS |"
puts "|---|---|---|---|---|---|---|---|---|---|---|---|"
rows.each do |n, t|
  puts format("| %d : %d | %.1f ms | %.1f ms | %.1f µs | %.1f ms | %.1f ms | %.2f ms | %.1f ms | %.1f ms | %.1f KB | %.1f KB | %.0f MB |",
              n, t["jobs"], t["bare squeue"], t["later start"], (t["later start"] - t["bare squeue"]) * 1000 / n, t["no cards"], t["first start"],
              (t["first start"] - t["later start"]) / t["cards made"], t["bare sacct + squeue -j"], t["later start, sacct"],
              t["retained RSS KB"].to_f / n, t["retained objects B"] / 1024.0 / n, t["peak RSS KB"] / 1024.0)
end
