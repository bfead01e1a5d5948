# frozen_string_literal: true

require "json"
require "net/http"

# One chat message to the chat app's Gradio through its gate, by Gradio's HTTP API (gradio 6.31: POST
# /gradio_api/call/<endpoint>, then its event stream), with the key as a Bearer token: the complete
# event's answer. Raises with the status when the gate or Gradio refuses.
module GradioHelpers
  # The Python with gradio and openai that script/setup makes (the chat app's MULTITENANT_CHAT_PYTHON).
  PYTHON = "/var/tmp/multitenant-chat-venv/bin/python"

  # PYTHON, for an example that runs the real Gradio: missing, the example is skipped, and fails in CI.
  def chat_python!
    return PYTHON if File.executable?(PYTHON)
    raise "CI=true: #{PYTHON} is missing: run script/setup" if ENV["CI"] == "true"

    skip "#{PYTHON} is missing: script/setup makes it"
  end

  def gradio_chat(url, key, message)
    uri = URI("#{url}gradio_api/call/chat")
    Net::HTTP.start(uri.host, uri.port, nil, read_timeout: 60) do |http|
      post = Net::HTTP::Post.new(uri, "Content-Type" => "application/json", "Authorization" => "Bearer #{key}")
      post.body = JSON.generate("data" => [message])
      res = http.request(post)
      raise "POST #{uri}: HTTP #{res.code}: #{res.body}" unless res.code == "200"

      events = http.request(Net::HTTP::Get.new(URI("#{uri}/#{JSON.parse(res.body).fetch("event_id")}"), "Authorization" => "Bearer #{key}")).body
      done = events.split("\n\n").find { |e| e.start_with?("event: complete\n") } or raise "no complete event: #{events}"
      JSON.parse(done.split("\ndata: ", 2).last).first
    end
  end
end
