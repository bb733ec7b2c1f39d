/* Plain TCP: the bytes on the wire are the plaintext, so both directions
 * go straight to the conn's own entry points. */
#include "conn.h"
#include "transport.h"

const struct lunet_transport lunet_transport_plain = {
    .name = "plain",
    .read = lunet_conn_plaintext,
    .write = lunet_conn_sock_write,
};
