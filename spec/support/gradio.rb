# frozen_string_literal: true

require "json"
require "net/http"

# One chat message to the chat app's Gradio through its gate, by Gradio's HTTP API (gradio 6.31: POST
# /gradio_api/call/<endpoint>, then its event stream), with the key as a Bearer token: the complete
# event's answer. Raises with the status when the gate or Gradio refuses.
module GradioHelpers
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
