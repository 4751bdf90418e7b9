use odock_mcp::{StdioCommand, StdioOptions, StdioTransport};
use serde_json::json;
use crate::support::*;

#[tokio::test]
async fn scratch_everything() {
    let transport = StdioTransport::new(
        StdioCommand { command: "npx".into(), args: vec!["-y".into(), "@modelcontextprotocol/server-everything".into()], ..Default::default() },
        StdioOptions::default(),
    ).unwrap();
    let reply = post(&transport, None, &initialize(1), true).await;
    let session = session_of(&reply);
    println!("INIT {:?}", json_body(reply));
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    println!("INITIALIZED {}", status(&post(&transport, Some(&session), &initialized, true).await));
    let list = post(&transport, Some(&session), &request(2, "tools/list", json!({})), true).await;
    let list = match list { odock_core::McpReply::Json{..} => vec![json_body(list)], s => stream_messages(s).await };
    let names: Vec<_> = list.last().unwrap()["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    println!("TOOLS {names:?}");
    for t in list.last().unwrap()["result"]["tools"].as_array().unwrap() { if t["name"].as_str().unwrap().contains("long") { println!("{t}"); } }
}
