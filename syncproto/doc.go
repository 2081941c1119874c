// Package syncproto is the pryvsync sync protocol: the messages replicas and
// the server exchange over a websocket (subprotocol "pryvsync.v1", one
// msgpack-encoded Message per binary frame), the codec, close codes and the
// validation gate. PROTOCOL.md describes the encoding for other languages.
//
// Invariants:
//   - Every inbound frame passes Validate before msgpack decodes it, so a
//     declared length can never make the decoder allocate beyond a small
//     multiple of the frame's size.
//   - A Message carries its type in T and exactly the body of that type.
//   - Cursors are (epoch, seq): seq counts the user's change log and means
//     "every change up to seq, in my scope, is applied".
package syncproto
