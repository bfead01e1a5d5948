# frozen_string_literal: true

# Seal and open through the Ruby extension: `ruby -Ilib bench/envelope.rb` (after `rake compile`).
require "multitenant"

key = MultiTenant::Key.generate
msg = { "session_id" => "0f8fad5b-d9cb-469f-a165-70867728950e", "app" => "Ollama_API", "method" => "card",
        "delivery" => "sys/multitenant-delivery_default",
        "connection" => { "host" => "node017", "port" => "41234", "ollama_url" => "http://node017.cluster.example.edu:41234",
                          "ollama_model" => "gpt-oss:120b" } }
job = { job_id: "1234567", owner: "jsmith42", cluster: "hpc", restarts: 0 }
name = MultiTenant::Envelope.seal(msg, key: key, group: "class101", **job)
n = 20_000
def micros(runs)
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  runs.times { yield }
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) * 1e6 / runs
end
seal = micros(n) { MultiTenant::Envelope.seal(msg, key: key, group: "class101", **job) }
open = micros(n) { MultiTenant::Envelope.open(name, keys: [key], **job) }
puts "| operation through Ruby (Ollama share, #{n} runs) | µs each |", "|---|---|",
     format("| MultiTenant::Envelope.seal | %.1f |", seal), format("| MultiTenant::Envelope.open | %.1f |", open)
