# frozen_string_literal: true

# Which clusters discovery searches, and how: read from OOD's clusters.d as ood_core reads it.
RSpec.describe MultiTenant::Clusters do
  around do |ex|
    Dir.mktmpdir do |dir|
      @dir = dir
      ex.run
    end
  end

  def write(id, v2) = File.write(File.join(@dir, id), YAML.dump("v2" => v2))
  def config(clusters) = MultiTenant::Config.new(clusters: clusters, clusters_dir: @dir)

  it "searches one cluster with plain commands when nothing is mapped" do
    expect(described_class.targets(config({}))).to eq([{ "name" => nil }])
  end

  it "reaches each mapped cluster exactly as its clusters.d entry says" do
    write("alpha-multitenant.yml", "job" => { "adapter" => "slurm", "bin" => "/usr/bin" })
    write("beta-multitenant.yaml", "job" => { "adapter" => "slurm", "cluster" => "beta", "conf" => "/etc/slurm-beta/slurm.conf",
                                              "bin_overrides" => { "squeue" => "/opt/beta/squeue" },
                                              "submit_host" => "login-beta", "strict_host_checking" => false })
    t = described_class.targets(config("alpha" => "alpha-multitenant", "beta" => "beta-multitenant"))
    expect(t[0]).to include("name" => "alpha", "bin" => "/usr/bin", "cluster" => nil, "submit_host" => nil)
    expect(t[0]["problem"]).to be_nil
    expect(t[1]).to include("name" => "beta", "cluster" => "beta", "conf" => "/etc/slurm-beta/slurm.conf",
                            "bin_overrides" => { "squeue" => "/opt/beta/squeue" }, "submit_host" => "login-beta",
                            "strict_host_checking" => false)
  end

  it "refuses a mapping it cannot use with one line that says the fix, and keeps the other clusters" do
    write("alpha-multitenant.yml", "job" => { "adapter" => "slurm" })
    write("pbs.yml", "job" => { "adapter" => "pbspro" })
    write("gamma.yml", "job" => { "adapter" => "slurm", "cluster" => "delta" })
    File.write(File.join(@dir, "broken.yml"), "v2: [unclosed")
    t = described_class.targets(config("alpha" => "alpha-multitenant", "beta" => "nosuch", "pbs" => "pbs", "gamma" => "gamma",
                                       "broken" => "broken"))
    expect(t[0]["problem"]).to be_nil
    problems = t[1..].map { |x| x["problem"] }
    expect(problems).to all(match(/\AMULTITENANT_CLUSTERS maps Slurm cluster \w+ to OOD cluster \w+, but .*: its shares are left as they were; fix the mapping or run rake -f …\/admin.rake install APPLY=1\z/))
    expect(problems[0]).to include("no #{@dir}/nosuch.yml")
    expect(problems[1]).to include(%(job.adapter is "pbspro", not slurm))
    expect(problems[2]).to include("job.cluster is delta, not gamma")
    expect(problems.map { |p| p.count("\n") }).to all(eq(0))
  end

  it "keeps the choices of what a run could not decide, and only those" do
    shares = { "1" => { "info" => { "cluster" => "a", "group" => "g" }, "connection" => { "jobid" => "1" } },
               "2@b" => { "info" => { "cluster" => "b", "group" => "g" }, "connection" => { "jobid" => "2" } },
               "3" => { "info" => { "cluster" => "a", "group" => "h" }, "connection" => { "jobid" => "3" } },
               "4" => { "info" => { "cluster" => "a", "group" => "g" }, "connection" => { "jobid" => "4" } } }
    unknown = { "all" => false, "clusters" => ["b"], "groups" => ["h"], "jobs" => [%w[a 4]] }
    expect(MultiTenant.undecided(shares, unknown).keys).to eq(%w[2@b 3 4])
    expect(MultiTenant.undecided(shares, unknown.merge("all" => true)).keys).to eq(%w[1 2@b 3 4])
    expect(MultiTenant.undecided(shares, { "all" => false, "clusters" => [], "groups" => [], "jobs" => [] })).to eq({})
  end
end
