"""The fanout publisher's own property encoding gives exactly pika's bytes (consumers decode them with
any AMQP client), and leaves anything else to pika."""

import pika
import pytest

from adapters.rabbit.fanout import FanoutProperties


@pytest.mark.parametrize("position", [1, 7, -3, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**40])
def test_fanout_properties_encode_as_pika_does(position: int) -> None:
    fields = dict(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json",
                  headers={"x-exnode-position": position, "x-exnode-node": "节点nodé1", "x-exnode-kind": "PUBLISHED",
                           "x-exnode-resource": "311140001/000001", "x-exnode-provider": "11100000MB01284764"},
                  message_id=f"n1:catalog:{position}", app_id="exnode:n1")
    assert b"".join(FanoutProperties(**fields).encode()) == b"".join(pika.BasicProperties(**fields).encode())


def test_other_properties_are_pikas() -> None:
    fields = dict(content_type="application/json", headers={"flag": True, "n": 3}, priority=5, delivery_mode=2,
                  message_id="m", app_id="a")
    assert b"".join(FanoutProperties(**fields).encode()) == b"".join(pika.BasicProperties(**fields).encode())
