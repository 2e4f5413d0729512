/* ---- one-shot digests (helpers in utils.py) ------------------------------------ */

void pm_md5(const void *data, size_t len, uint8_t out[16]) {
  mg_md5_ctx ctx;
  mg_md5_init(&ctx);
  mg_md5_update(&ctx, (const unsigned char *) data, len);
  mg_md5_final(&ctx, out);
}

void pm_sha1(const void *data, size_t len, uint8_t out[20]) {
  mg_sha1_ctx ctx;
  mg_sha1_init(&ctx);
  mg_sha1_update(&ctx, (const unsigned char *) data, len);
  mg_sha1_final(out, &ctx);
}
