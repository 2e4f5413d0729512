/* MQTT: the client keepalive Mongoose lacks, and MQTT 5 property types. */

/* Mongoose's MQTT client sends PINGREQ only when asked; brokers drop a client
 * that stays silent for 1.5 keepalive periods. Ping once idle for half of one. */
static void pm_mqtt_keepalive(struct mg_connection *c, struct pm_conn *st, int ev) {
  uint64_t now = mg_millis();
  if (ev == MG_EV_MQTT_OPEN) {
    st->mqtt_open = true;
    st->mqtt_last_write = now;
  } else if (ev == MG_EV_WRITE) {
    st->mqtt_last_write = now;
  } else if (ev == MG_EV_POLL && st->mqtt_open && !c->is_closing &&
             now - st->mqtt_last_write >= st->mqtt_keepalive / 2) {
    mg_mqtt_ping(c);
    st->mqtt_last_write = now;
  }
}

/* ---- MQTT 5 properties --------------------------------------------------------- */

int pm_mqtt_prop_type(int id) {
  return id < 0 || id > 255 ? -1 : mqtt_prop_type_by_id((uint8_t) id);
}
