"""Objects for the issue-9 S3 scenarios, written by the real clients:
boto3 (every upload below), rclone (multipart with x-amz-meta-md5chksum),
and a served bit flip made on SeaweedFS's own volume files.

usage: plant_trust.py ENDPOINT KEY SECRET DATA_DIR DUMP
"""
import glob
import gzip
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

import boto3
from botocore.config import Config

endpoint, key, secret, data_dir, dump_path = sys.argv[1:6]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=key,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),
)
B = "trust"
MiB = 1024 * 1024
s3.create_bucket(Bucket=B)
s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})
dump = open(dump_path, "rb").read()


def corrupt_gzip(data):
    """A gzip stream with one byte of its deflate data changed: the stored
    checksums boto3 computes are those of these damaged bytes."""
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x55
    try:
        gzip.decompress(bytes(bad))
    except Exception:
        return bytes(bad)
    raise SystemExit("the flip left the gzip stream valid")


bad = corrupt_gzip(dump)

# A noncurrent version that is a damaged gzip, overwritten by a good one.
s3.put_object(Bucket=B, Key="versions/db-2026-11-20.sql.gz", Body=bad, ChecksumAlgorithm="SHA256")
s3.put_object(Bucket=B, Key="versions/db-2026-11-20.sql.gz", Body=dump, ChecksumAlgorithm="SHA256")
# A deleted object whose only restorable version is a damaged gzip.
s3.put_object(Bucket=B, Key="gone/db-2026-11-19.sql.gz", Body=bad, ChecksumAlgorithm="SHA256")
s3.delete_object(Bucket=B, Key="gone/db-2026-11-19.sql.gz")

# Multipart with parts of different sizes, a composite CRC32 per part.
sizes = [6 * MiB, 5 * MiB + 12345, 7 * MiB]
blob = bytes((i * 2654435761 >> 13) & 0xFF for i in range(sum(sizes)))
up = s3.create_multipart_upload(Bucket=B, Key="unequal/blob-2026-11-20.bin", ChecksumAlgorithm="CRC32")
parts, off = [], 0
for n, size in enumerate(sizes, 1):
    r = s3.upload_part(Bucket=B, Key="unequal/blob-2026-11-20.bin", UploadId=up["UploadId"],
                       PartNumber=n, Body=blob[off:off + size], ChecksumAlgorithm="CRC32")
    off += size
    parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
s3.complete_multipart_upload(Bucket=B, Key="unequal/blob-2026-11-20.bin", UploadId=up["UploadId"],
                             MultipartUpload={"Parts": parts})

# rclone multipart uploads: x-amz-meta-md5chksum is their whole-object MD5.
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "blob-2026-11-20.bin")
    with open(src, "wb") as f:
        f.write(blob[: 11 * MiB + 777])
    env = dict(os.environ,
               RCLONE_CONFIG=os.path.join(tmp, "rclone.conf"),
               RCLONE_CONFIG_SW_TYPE="s3", RCLONE_CONFIG_SW_PROVIDER="SeaweedFS",
               RCLONE_CONFIG_SW_ACCESS_KEY_ID=key, RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=secret,
               RCLONE_CONFIG_SW_ENDPOINT=endpoint, RCLONE_CONFIG_SW_REGION="us-east-1")
    # rclone's S3 client cannot load a custom CA bundle over its own
    # transport; the endpoint is plain HTTP anyway.
    env.pop("AWS_CA_BUNDLE", None)
    subprocess.run(["rclone", "copyto", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
                    src, f"sw:{B}/rclone/blob-2026-11-20.bin"], env=env, check=True)
head = s3.head_object(Bucket=B, Key="rclone/blob-2026-11-20.bin")
assert "md5chksum" in head["Metadata"] and head["ETag"].strip('"').endswith("-3"), head
# The same object copied with a wrong md5chksum (a plain copy, so nothing
# else the store records disagrees).
wrong = "AAAAAAAAAAAAAAAAAAAAAA=="
s3.copy_object(Bucket=B, Key="rclone-bad/blob-2026-11-20.bin",
               CopySource={"Bucket": B, "Key": "rclone/blob-2026-11-20.bin"},
               MetadataDirective="REPLACE", Metadata={"md5chksum": wrong})

# A server-side copy by UploadPartCopy: SeaweedFS reports a wrong ETag for
# it (for a source stored in more than one chunk), while the sha256
# recorded in its metadata matches the bytes.
copied = blob[: 6 * MiB + 100]
s3.put_object(Bucket=B, Key="copysrc/db.sql.gz", Body=copied)
up = s3.create_multipart_upload(Bucket=B, Key="copied/db-2026-11-20.sql.gz",
                                Metadata={"sha256": hashlib.sha256(copied).hexdigest()})
r = s3.upload_part_copy(Bucket=B, Key="copied/db-2026-11-20.sql.gz", UploadId=up["UploadId"],
                        PartNumber=1, CopySource={"Bucket": B, "Key": "copysrc/db.sql.gz"})
s3.complete_multipart_upload(Bucket=B, Key="copied/db-2026-11-20.sql.gz", UploadId=up["UploadId"],
                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
right = hashlib.md5(hashlib.md5(copied).digest()).hexdigest() + "-1"
got = s3.head_object(Bucket=B, Key="copied/db-2026-11-20.sql.gz")["ETag"].strip('"')
assert got != right, "SeaweedFS now reports the right ETag: the scenario needs another faulty store"


# A faithful copy in another bucket, for a copy promise that is kept.
for bucket in ("content", "copy"):
    s3.put_object(Bucket=bucket, Key="mirrored/db-2026-11-20.sql.gz", Body=dump)

# Bit rot served by the store: an object with boto3's default CRC32; one of
# its bytes flipped in the volume file, and the volume's own needle CRC
# (CRC32-C of the data, big-endian, just after it) made to match, so
# SeaweedFS serves the flipped byte.
def crc32c(b):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    c = 0xFFFFFFFF
    for x in b:
        c = table[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


marker = b"backproof-bit-rot-marker-" + os.urandom(8).hex().encode()
rot = marker + os.urandom(20000) + marker
s3.put_object(Bucket=B, Key="rot/blob-2026-11-20.bin", Body=rot, ChecksumAlgorithm="CRC32")
assert s3.head_object(Bucket=B, Key="rot/blob-2026-11-20.bin", ChecksumMode="ENABLED").get("ChecksumCRC32")
done = False
for path in glob.glob(os.path.join(data_dir, "**", "*.dat"), recursive=True):
    with open(path, "r+b") as f:
        vol = f.read()
        at = vol.find(marker)
        if at < 0:
            continue
        crc_at = vol.find(struct.pack(">I", crc32c(rot)), at + len(rot), at + len(rot) + 64)
        assert crc_at > 0, "needle CRC not found after the data"
        flipped = bytearray(rot)
        flipped[1000] ^= 0x01
        f.seek(at + 1000)
        f.write(bytes([flipped[1000]]))
        f.seek(crc_at)
        f.write(struct.pack(">I", crc32c(bytes(flipped))))
        done = True
assert done, "object data not found in the volume files"
print("planted")
