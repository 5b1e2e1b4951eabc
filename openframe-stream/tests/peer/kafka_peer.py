"""A Kafka peer client for tests/kafka_peer_client.rs, written against confluent-kafka (librdkafka
bundled in its wheel), so our bus is checked against a client no one here wrote.

  kafka_peer.py produce BROKERS MESH_TOPIC FLEET_TOPIC
      Produces Debezium change envelopes as the MeshCentral (MongoDB connector) and FleetDM
      (MySQL connector) source connectors write them, keyed like Debezium does, with the
      Java-compatible murmur2 partitioner. Prints one JSON line per record: topic, key,
      partition, offset.

  kafka_peer.py consume BROKERS TOPIC GROUP COUNT
      Reads COUNT records in consumer group GROUP from the beginning, commits them, and prints
      one JSON line per record: key, value, headers, partition, offset, timestamp.
"""

import json
import sys

from confluent_kafka import Consumer, Producer

BASE_MS = 1740823260000


def mesh_event(i, action, extra):
    """A MeshCentral `events` document as Debezium's MongoDB connector emits it (the document
    as an extended-JSON string in `after`)."""
    node = "node//PeerNode%02dAbCdEfGhIjKlMnOpQrStUvWxYz0123456789$" % i
    doc = {
        "_id": {"$oid": "65f1c2a9e4b0a1d2c3f4%04d" % (100 + i)},
        "etype": "node",
        "action": action,
        "nodeid": node,
        "meshid": "mesh//acme-servers",
        "domain": "acme",
        "time": {"$date": BASE_MS + i * 1000},
    }
    doc.update(extra)
    envelope = {
        "before": None,
        "after": json.dumps(doc),
        "source": {
            "version": "2.7.3.Final",
            "connector": "mongodb",
            "name": "meshcentral",
            "ts_ms": BASE_MS + i * 1000,
            "snapshot": "false",
            "db": "meshcentral",
            "sequence": None,
            "rs": "rs0",
            "collection": "events",
            "ord": i + 1,
            "lsid": None,
            "txnNumber": None,
        },
        "op": "c",
        "ts_ms": BASE_MS + i * 1000 + 50,
    }
    key = json.dumps({"id": json.dumps({"$oid": doc["_id"]["$oid"]})})
    return node, key, envelope


def fleet_activity(i):
    """A FleetDM `activities` row as Debezium's MySQL connector emits it."""
    host = 500 + i
    row = {
        "id": 70000 + i,
        "created_at": "2025-03-01T10:%02d:00Z" % i,
        "user_id": 3,
        "user_name": "Peer Admin",
        "user_email": "peer@acme.example",
        "activity_type": "ran_script",
        "details": json.dumps(
            {
                "host_id": host,
                "host_display_name": "peer-%02d" % i,
                "script_execution_id": "0f0e0d0c-0b0a-4908-8706-05040302010%d" % i,
                "script_name": "peer-check.sh",
                "async": True,
                "policy_id": None,
            }
        ),
        "streamed": 0,
        "fleet_initiated": 0,
        "host_only": 0,
        "team_id": 7,
    }
    envelope = {
        "before": None,
        "after": row,
        "source": {
            "version": "2.7.3.Final",
            "connector": "mysql",
            "name": "fleet",
            "ts_ms": BASE_MS + i * 1000,
            "snapshot": "false",
            "db": "fleet",
            "sequence": None,
            "table": "activities",
            "server_id": 1,
            "gtid": None,
            "file": "binlog.000042",
            "pos": 20000 + i * 100,
            "row": 0,
            "thread": 17,
            "query": None,
        },
        "op": "c",
        "ts_ms": BASE_MS + i * 1000 + 80,
    }
    key = json.dumps({"id": row["id"]})
    return str(host), key, envelope


def produce(brokers, mesh_topic, fleet_topic):
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "client.id": "python-peer",
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    delivered = []

    def report(err, msg):
        if err is not None:
            raise RuntimeError("delivery failed: %s" % err)
        delivered.append(
            {
                "topic": msg.topic(),
                "key": msg.key().decode(),
                "partition": msg.partition(),
                "offset": msg.offset(),
            }
        )

    mesh = [
        mesh_event(0, "nodeconnect", {"conn": 1, "pwr": 1, "msg": "Agent connected"}),
        mesh_event(1, "nodeconnect", {"conn": 1, "pwr": 1, "msg": "Agent connected"}),
    ]
    for i, (_node, key, envelope) in enumerate(mesh):
        producer.produce(
            mesh_topic,
            key=key.encode(),
            value=json.dumps(envelope).encode(),
            headers=[("message-type", b"MESHCENTRAL_EVENT")],
            timestamp=BASE_MS + i * 1000,
            on_delivery=report,
        )
    for i in range(3):
        _host, key, envelope = fleet_activity(i)
        producer.produce(
            fleet_topic,
            key=key.encode(),
            value=json.dumps(envelope).encode(),
            timestamp=BASE_MS + i * 1000,
            on_delivery=report,
        )
    remaining = producer.flush(30)
    if remaining:
        raise RuntimeError("%d records were not delivered" % remaining)
    for line in delivered:
        print(json.dumps(line))


def consume(brokers, topic, group, count):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    idle = 0
    while seen < count:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            if idle > 60:
                raise RuntimeError("only %d of %d records arrived" % (seen, count))
            continue
        if msg.error():
            raise RuntimeError("consume failed: %s" % msg.error())
        _kind, ts = msg.timestamp()
        print(
            json.dumps(
                {
                    "key": msg.key().decode() if msg.key() is not None else None,
                    "value": msg.value().decode(),
                    "headers": [[k, v.decode()] for k, v in (msg.headers() or [])],
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "timestamp": ts,
                }
            )
        )
        consumer.commit(message=msg, asynchronous=False)
        seen += 1
    consumer.close()


def main():
    mode = sys.argv[1]
    if mode == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        raise SystemExit("unknown mode %r" % mode)


if __name__ == "__main__":
    main()
