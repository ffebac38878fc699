package actions

// Instructions tells the model how to answer; a prompt includes it verbatim.
const Instructions = `Answer with the actions you take, one per line, in this format (nothing else is executed):
POST: <text>                          publish a public note
DM: <npub or hex pubkey> <text>       send an encrypted direct message
CHANNEL: <text>                       post in your channel (or CHANNEL: <channel id> <text>)
ZAP: <npub or hex pubkey> <sats> [comment]   pay a zap
GOAL: add <description>               add a goal
GOAL: update <goal id> <progress 0..1>   record progress on a goal
GOAL: complete <goal id>              mark a goal completed
Alternatively answer with JSON: {"actions":[{"type":"post","content":"..."},
{"type":"dm","to":"npub1...","content":"..."},{"type":"channel","content":"..."},
{"type":"zap","to":"npub1...","sats":21,"comment":"..."},{"type":"goal_add","description":"...","priority":1},
{"type":"goal_update","id":"g1","progress":0.5},{"type":"goal_complete","id":"g1"}]}
Texts are at most 4000 characters. If nothing is worth doing, answer {"actions":[]}.`
