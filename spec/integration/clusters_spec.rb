# frozen_string_literal: true

require "securerandom"

# The test infrastructure's second Slurm cluster (spec/cluster/testcluster): mtbeta, in the same slurmdbd as
# mtcluster, reached with -M from the default config or with its own SLURM_CONF.
RSpec.describe "the second test cluster, mtbeta", :cluster do
  before { require_cluster! }
  after { cancel_cluster_jobs }

  let(:beta) { ClusterHelpers::BETA }
  let(:beta_env) { { "SLURM_CONF" => ClusterHelpers::BETA_CONF } }

  def capture(*cmd, env: {})
    out, err, status = Open3.capture3(env, *cmd)
    raise "#{cmd.join(" ")} failed: #{err}" unless status.success?

    out
  end

  it "runs a job submitted with -M mtbeta, which squeue -M mtbeta lists and plain squeue does not" do
    name = "beta-#{SecureRandom.hex(4)}"
    id = plain_job_on(beta, "mtmember", name: name)
    poll("job #{id} running on #{beta}") { running_on?(beta, id) }

    row = "#{id} #{name} mtmember mtbeta1\n"
    format = ["-o", "%i %j %u %N"]
    # squeue -M prints the cluster's name on a line of its own first, even with --noheader.
    [{}, beta_env].each do |env|
      # squeue -M prints the cluster's name on a line of its own before its header; --noheader drops both.
      expect(capture("squeue", "-M", beta, *format, env: env).lines.first(2)).to eq(["CLUSTER: mtbeta\n", "JOBID NAME USER NODELIST\n"])
      lines = capture("squeue", "-M", beta, "--noheader", *format, env: env).lines
      expect(lines).to include(row)
      expect(lines.grep(/CLUSTER|JOBID/)).to eq([])
    end
    expect(capture("squeue", "--noheader", *format, env: beta_env).lines).to include(row)
    expect(capture("squeue", "--noheader", *format)).not_to include(name)
    expect(capture("squeue", "-M", "mtcluster", "--noheader", *format)).not_to include(name)

    poll("job #{id} in #{beta}'s accounting") { in_accounting_on?(beta, id) }
    sacct = -> { capture("sacct", "-M", beta, "-n", "-X", "-P", "-a", "-j", id, "--format=JobIDRaw,JobName,User,Cluster") }
    poll("job #{id}'s name in #{beta}'s accounting") { sacct.().lines == ["#{id}|#{name}|mtmember|mtbeta\n"] }
    expect(capture("sacct", "-n", "-X", "-P", "-a", "--name=#{name}", "--format=JobIDRaw")).to eq("")

    expect(system("scancel", "-M", beta, id)).to be(true)
    poll("job #{id} to leave #{beta}'s queue") { !running_on?(beta, id) }
  end

  it "has mtcluster's associations: mtowner may use --wckey=multitenant, mtoutsider may not, defaults as there" do
    id = sbatch_on(beta, "mtowner", "--wckey=multitenant", "-J", "owner", "-o", "/dev/null", "--wrap", "sleep 900")
    default_owner = plain_job_on(beta, "mtowner")
    default_mtdefault = plain_job_on(beta, "mtdefault")
    wckey = ->(job) { slurm_on(beta, "squeue", "-h", "-j", job, "-O", "WCKey:").strip }
    expect([wckey.(id), wckey.(default_owner), wckey.(default_mtdefault)]).to eq(%w[multitenant *personal *multitenant])

    out, err, status = run_as("mtoutsider", "sbatch", "--parsable", "-M", beta, "--wckey=multitenant", "-o", "/dev/null",
                              "--wrap", "sleep 900")
    expect(status).not_to be_success, "mtoutsider's job was accepted: #{out}"
    expect(err).to match(/invalid wckey/i)
    expect(capture("sacctmgr", "-n", "-P", "show", "assoc", "where", "cluster=#{beta}", "format=account,user").lines.map(&:strip))
      .to include("mtaccount|mtowner", "mtaccount|mtmember", "mtaccount|mtprimary", "mtaccount|mtoutsider", "mtaccount|mtdefault")
  end

  it "can have the same job id on both clusters (sbatch_on with jobid: raises a cluster's next id)" do
    id = common_next_job_id("mtcluster", beta)
    expect(plain_job_on("mtcluster", "mtowner", name: "alpha-twin", jobid: id)).to eq(id.to_s)
    expect(plain_job_on(beta, "mtowner", name: "beta-twin", jobid: id)).to eq(id.to_s)
    expect(job_name_on("mtcluster", id)).to eq("alpha-twin")
    expect(job_name_on(beta, id)).to eq("beta-twin")
    expect(slurm_on(beta, "squeue", "-h", "-j", id.to_s, "-o", "%u")).to eq("mtowner\n")
    expect { plain_job_on(beta, "mtowner", jobid: id) }.to raise_error(/is not the job id #{id} asked for/)
  end
end
